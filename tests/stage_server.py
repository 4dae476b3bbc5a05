"""``python -m stages.<stage>`` for the tests, without paying the imports at every start.

A stage process spends most of a tiny-params run importing torch, scikit-learn, pandas
and matplotlib (2-4 s of CPU), and the suite starts a few hundred of them: through
:func:`conftest.run_stage` and through DVC in the pipeline tests. The server imports those
libraries once, then forks a child for each stage run. The child takes the caller's
terminal or pipes (passed over a Unix socket), working folder and environment, and runs
the stage module as ``python -m`` does, so stdout, stderr, the exit status and the files
written are the stage's own. The repository's code (``nnlab``, ``stages``) is never imported
ahead: each child imports it from its own folder, so a clone's edits count.

Callers reach the server through a ``python`` earlier on ``PATH`` (:data:`SHIM`, which DVC
runs as every stage's ``python``): for ``-m stages.…`` (or another of the repository's entry
points, ``-m nnlab.predict``) it connects to the server, forwards
SIGINT, SIGTERM and SIGHUP to the child and exits as the child did; the child is killed when
the shim dies (SIGKILL included). Anything else it hands to the real interpreter.

The server imports the libraries in the environment of the session that starts it, which
tests/conftest.py has pinned to the stages' float kernels by importing nnlab (or left as it is,
with NNLAB_NATIVE_KERNELS=1), so a fork computes with the kernels a plain stage process would.
What a fork cannot give, tests keep in real processes: a signal to a stage's own process
group (tests/test_faults.py) and environment variables read at import time, such as a kernel
choice of the caller's own (tests/test_kernels.py; tests/test_other_kernels.py runs a session,
and a server, of its own).
"""
from __future__ import annotations

import atexit
import contextlib
import gc
import io
import json
import os
import random
import runpy
import signal
import socket
import struct
import sys
import threading
import traceback
from pathlib import Path

#: Imported once by the server; a stage that needs more imports it in its child.
LIBRARIES = ("numpy", "pandas", "yaml", "tqdm", "PIL.Image", "scipy.sparse", "sklearn.model_selection",
             "sklearn.feature_extraction.text", "sklearn.linear_model", "sklearn.metrics", "sklearn.preprocessing",
             "sklearn.datasets", "joblib", "nltk.stem", "matplotlib", "matplotlib.pyplot", "torch", "torch.nn",
             "threadpoolctl")

SHIM = r'''#!{python} -SE
# The tests' `python` (tests/stage_server.py): `-m stages.…` or `-m nnlab.…` runs in a fork of the stage server.
import os, signal, socket, struct, sys, json
argv = sys.argv[1:]
server = os.environ.get("NNLAB_STAGE_SERVER")
if not (server and len(argv) >= 2 and argv[0] == "-m" and argv[1].startswith(("stages.", "nnlab."))):
    os.execv({python!r}, [{python!r}, *argv])
connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    connection.connect(server)
except OSError:  # the session that started the server has ended: run it the plain way
    os.execv({python!r}, [{python!r}, *argv])
request = json.dumps({{"argv": argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
message = struct.pack("!I", len(request)) + request
sent = socket.send_fds(connection, [message], [0, 1, 2])
connection.sendall(message[sent:])
def forward(signum, frame):
    connection.send(bytes([signum]))
for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(signum, forward)
status = b""
while len(status) < 4:
    chunk = connection.recv(4 - len(status))
    if not chunk:
        sys.exit("stage server: the connection closed before the stage ended")
    status += chunk
code = struct.unpack("!i", status)[0]
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
'''

#: The interpreter's own path entries (the standard library and site-packages), without the
#: server script's folder: each child puts its working folder and PYTHONPATH before them.
BASE_PATH = sys.path[1:]


def receive(connection: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    while len(data) < 4 or len(data) < 4 + struct.unpack("!I", data[:4])[0]:
        chunk = connection.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the shim closed mid-request")
        data += chunk
    return json.loads(data[4:]), fds


def as_a_fresh_interpreter(env: dict) -> None:
    """Undo what the child shares with the server and a fresh ``python`` would not have.

    Every global generator gets a fresh random seed, so a stage that draws from one unseeded
    gives other numbers in each run here too, as it does in a user's ``dvc repro`` (forks would
    otherwise all start from the server's state). The thread counts follow the caller's
    ``OMP_NUM_THREADS``, which a fresh interpreter reads at import. What stays the server's:
    the hash secret of str and bytes (``PYTHONHASHSEED``): tests/test_faults.py reruns
    stages in fresh interpreters for that.
    """
    import numpy
    import threadpoolctl
    import torch

    random.seed(os.urandom(16))
    numpy.random.seed(int.from_bytes(os.urandom(4), "little"))
    torch.seed()
    threads = env.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
        threadpoolctl.threadpool_limits(int(threads))


def run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become ``python -m <module> <args>`` in the caller's folder; never returns."""
    code, globals_ = 1, None
    try:
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))
        sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False, buffering=0 if unbuffered else -1),
                                      line_buffering=os.isatty(1), write_through=unbuffered)
        sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False, buffering=0), line_buffering=True,
                                      write_through=True, errors="backslashreplace")
        sys.stdin = io.TextIOWrapper(open(0, "rb", closefd=False))
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        extra = [entry for entry in request["env"].get("PYTHONPATH", "").split(os.pathsep) if entry]
        sys.path[:] = [request["cwd"], *extra, *BASE_PATH]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        as_a_fresh_interpreter(request["env"])
        module, *args = request["argv"]
        sys.argv = [module, *args]
        globals_ = runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except BaseException:  # what the interpreter prints for an uncaught exception
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            # What interpreter shutdown does next: the script's objects are freed (an open file
            # object flushes and closes, a finalizer runs), then the standard streams flush.
            if globals_ is not None:
                globals_.clear()
            gc.collect()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve_one(connection: socket.socket) -> None:
    with connection:
        request, fds = receive(connection)
        pid = os.fork()
        if pid == 0:
            run_child(request, fds)
        for fd in fds:
            os.close(fd)
        ended = threading.Event()

        def forward_signals() -> None:   # a signal number from the shim, or its end
            while True:
                try:
                    data = connection.recv(1)
                except OSError:
                    return
                if ended.is_set():
                    return
                try:
                    os.kill(pid, data[0] if data else signal.SIGKILL)
                except ProcessLookupError:
                    return
                if not data:
                    return

        forwarder = threading.Thread(target=forward_signals, daemon=True)
        forwarder.start()
        _, status = os.waitpid(pid, 0)
        ended.set()
        try:
            connection.sendall(struct.pack("!i", os.waitstatus_to_exitcode(status)))
        except OSError:
            pass
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)   # wakes the forwarder's recv, which close alone would not
        forwarder.join()


def serve(socket_path: str) -> None:
    """Listen at ``socket_path`` at once (callers wait in the backlog), import, then serve."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    for name in LIBRARIES:
        __import__(name)
    # The libraries' objects leave the collector's view: a child's gc.collect() at its end would
    # otherwise walk them all, writing to every page it shares with the server (0.27 s a run).
    gc.freeze()
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve_one, args=(connection,), daemon=True).start()


def write_shim(folder: Path, python: str) -> Path:
    """``folder/python``, the shim for the interpreter ``python``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "python"
    shim.write_text(SHIM.format(python=python))
    shim.chmod(0o755)
    return folder


if __name__ == "__main__":  # python tests/stage_server.py SOCKET
    serve(sys.argv[1])
