"""Faults, in clones of the shared tiny-params baseline (tests/pipeline_repo.py).

- A training stage interrupted mid-run, by Ctrl-C (SIGINT to `dvc repro`'s process
  group) and then, in the next run, by SIGKILL of the stage's own python process:
  neither leaves a temporary file, the next `dvc repro` finishes the pipeline, no temporary or half-written output survives, every
  metrics file is strict JSON, and the outputs equal the uninterrupted baseline's.
- Determinism: `dvc repro --force` of numpy, torch and scikit-learn stages, each in a fresh
  interpreter (another hash seed, one thread), gives
  byte-identical outputs (metrics, plots, data) to the baseline's first run, which
  also shows that running a stage twice on unchanged inputs leaves its outputs as
  they were. Study tables keep wall-clock columns (TIMING_COLUMNS); those files
  are compared without them.
"""
from __future__ import annotations

import fcntl
import os
import pty
import random
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.register_assert_rewrite("pipeline_repo")
from conftest import venv_env  # noqa: E402
from pipeline_repo import (GIT_ENV, clone_workspace, expanded_stages, load_strict, metrics_files,  # noqa: E402
                           sh, stage_outputs)

pytest_plugins = ["pipeline_repo"]

# The numpy MLP: no torch import, so it is training about a second after it starts.
TRAINING_STAGE = "mlp_moons"
LONG_RUN = {"steps": 10_000_000}
# Study tables time their runs (as the reports did): those columns differ between two runs.
TIMING_COLUMNS = {"seconds"}
# One of each kind: numpy data, numpy training with a study table that has a seconds column
# (mnist_grid), torch on MNIST, IMDB and MRI, and scikit-learn TF-IDF.
DETERMINISM_STAGES = ["generate", "mnist_grid", "mnist_torch", "preprocess", "imdb_train", "mri_model@simple_nn2"]


def stage_outs(repo: Path, stage: str) -> list[str]:
    """The declared outs, metrics and plots of ``stage`` (``name@item`` for foreach stages)."""
    return stage_outputs(expanded_stages(repo)[stage])


def files_under(repo: Path, paths: list[str]) -> list[str]:
    found = []
    for path in paths:
        full = repo / path
        found += [str(p.relative_to(repo)) for p in sorted(full.rglob("*")) if p.is_file()] if full.is_dir() \
            else [path]
    return found


def all_outputs(repo: Path) -> list[str]:
    return sorted({f for stage in expanded_stages(repo).values() for f in files_under(repo, stage_outputs(stage))})


def without_timing(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    return frame.drop(columns=[c for c in frame.columns if c in TIMING_COLUMNS])


def assert_same_outputs(repo: Path, baseline: Path, files: list[str]) -> None:
    """Every file byte-identical to the baseline's; CSVs with timing columns equal without them."""
    differing = []
    for name in files:
        ours, theirs = repo / name, baseline / name
        assert ours.is_file(), f"{name} is missing"
        if ours.read_bytes() == theirs.read_bytes():
            continue
        if name.endswith(".csv") and TIMING_COLUMNS & set(pd.read_csv(theirs, nrows=0).columns):
            pd.testing.assert_frame_equal(without_timing(ours), without_timing(theirs), obj=name)
            continue
        differing.append(name)
    assert not differing, f"differ from the baseline's first run: {differing}"


def leftover_temporaries(repo: Path) -> list[str]:
    """StageOutputs' hidden ``.<name>.<random>.tmp<suffix>`` siblings, outside git's and DVC's own folders."""
    return [str(p.relative_to(repo)) for p in repo.rglob(".*.tmp*")
            if p.relative_to(repo).parts[0] not in (".git", ".dvc")]


def set_params(repo: Path, section: str, values: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stage_process(session: int, stage: str) -> int | None:
    """The pid of ``python -m stages.<stage>`` in the process session ``session``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if f"stages.{stage}".encode() in command and os.getsid(int(entry.name)) == session:
                return int(entry.name)
        except (OSError, ProcessLookupError):
            continue
    return None


#: Bounds on waiting for an event (training started, the processes gone), not deadlines: a run
#: meets the event in seconds on idle cores and in a minute or two under a load average of 10 on 2
#: cores; the bound is there so that a hung run fails the test instead of the whole suite.
NO_LOADED_MACHINE_WAITS = 900


def interrupted_repro(repo: Path, stage: str, signum: int, timeout: float = NO_LOADED_MACHINE_WAITS) -> str:
    """`dvc repro -s stage` on a terminal; once its progress bar moves, deliver ``signum``:
    SIGINT to the whole process group (as Ctrl-C does), SIGKILL to the stage's python alone.
    Waits on each event for at most ``timeout`` seconds. Returns what the terminal showed."""
    main_fd, child_fd = pty.openpty()  # a terminal, so that tqdm draws its bar...
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # ...which needs a width
    # The stage in a process of its own, not a fork of tests/stage_server.py: signals reach it as a user's would.
    process = subprocess.Popen(["dvc", "repro", "-s", stage], cwd=repo, env={**venv_env(stage_server=False), **GIT_ENV},
                               stdin=subprocess.DEVNULL, stdout=child_fd, stderr=child_fd, start_new_session=True)
    os.close(child_fd)
    shown, deadline = b"", time.monotonic() + timeout
    try:
        def training() -> bool:  # the stage's own bar, not one of DVC's
            bar = shown.partition(f"> python -m stages.{stage}".encode())[2]
            return b"it/s]" in bar or b"s/it]" in bar

        while not training():
            assert process.poll() is None and time.monotonic() < deadline, \
                f"{stage} ended or never started training:\n{shown.decode(errors='replace')}"
            if select.select([main_fd], [], [], 0.5)[0]:
                shown += os.read(main_fd, 65536)
        if signum == signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)
        else:
            pid = stage_process(process.pid, stage)
            assert pid is not None, "the stage's python process is gone"
            os.kill(pid, signal.SIGKILL)
        # Read the terminal until the processes have exited and said everything: a full pty buffer
        # would block their writes on the way out.
        exit_deadline = time.monotonic() + timeout
        while time.monotonic() < exit_deadline:
            exited = process.poll() is not None
            if not select.select([main_fd], [], [], 0.2)[0]:
                if exited:
                    break
                continue
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # the terminal closed
                chunk = b""
            if not chunk and exited:
                break
            shown += chunk
        process.wait(timeout=max(0.0, exit_deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        os.close(main_fd)
    assert process.returncode != 0, "dvc repro ended normally: the signal came too late"
    return shown.decode(errors="replace")


def test_interrupted_training_then_repro_recovers(baseline, tmp_path):
    """Ctrl-C, then a SIGKILL of the next run: each leaves nothing behind, and `dvc repro` recovers."""
    repo = clone_workspace(baseline.path, tmp_path / "workspace")
    set_params(repo, TRAINING_STAGE, LONG_RUN)
    shown = interrupted_repro(repo, TRAINING_STAGE, signal.SIGINT)
    assert "interrupted: no outputs were written" in shown, shown
    assert not leftover_temporaries(repo)
    interrupted_repro(repo, TRAINING_STAGE, signal.SIGKILL)
    assert not leftover_temporaries(repo)

    sh("git", "checkout", "params.yaml", cwd=repo)
    sh("dvc", "repro", cwd=repo)
    assert "up to date" in sh("dvc", "status", cwd=repo)
    assert not leftover_temporaries(repo)
    for path in metrics_files(repo):
        load_strict(path)
    assert_same_outputs(repo, baseline.path, all_outputs(repo))


def test_forced_rerun_gives_identical_outputs(baseline, tmp_path):
    """Determinism and idempotence: the same stages again, nothing changed, the same bytes.

    The baseline's stages ran in forks of the stage server; these run as a user's `dvc repro` runs
    them, each in a fresh interpreter with another hash seed (a set of strings iterates in another
    order) and one thread where the server had every core. The forks reseed every global random
    generator (tests/stage_server.py), so an unseeded draw differs from the baseline's either way.
    """
    repo = clone_workspace(baseline.path, tmp_path / "workspace")
    before = {name: (repo / name).stat().st_mtime_ns for name in all_outputs(repo)}
    as_a_user = {**venv_env(stage_server=False), "PYTHONHASHSEED": str(random.randrange(1, 2**32)),
                 "OMP_NUM_THREADS": "1"}
    output = sh("dvc", "repro", "--force", "-s", *DETERMINISM_STAGES, cwd=repo, env=as_a_user)
    assert output.count("Running stage") == len(DETERMINISM_STAGES), output
    rerun = sorted(f for stage in DETERMINISM_STAGES for f in files_under(repo, stage_outs(repo, stage)))
    # A training stage's persisted checkpoint is kept, not rewritten, when the run it records is complete.
    rewritten = [name for name in rerun if not name.startswith("checkpoints/")]
    assert all((repo / name).stat().st_mtime_ns != before[name] for name in rewritten), "a stage did not rewrite"
    assert_same_outputs(repo, baseline.path, rerun)
    for path in metrics_files(repo):
        assert path.read_bytes() == (baseline.path / path.relative_to(repo)).read_bytes(), path
    assert not leftover_temporaries(repo)


def test_going_back_keeps_a_model_whose_committed_version_the_cache_lacks(baseline, tmp_path):
    """The README's way back after a run on a CPU that trained other bytes than the commit's: the
    committed dvc.lock names a model version this cache never held. `dvc checkout` would delete the
    workspace's model; `python -m nnlab.restore` keeps it, names it and its rebuild in one line, and
    exits 1, while every other output and the git files come back."""
    repo = clone_workspace(baseline.path, tmp_path / "workspace")
    lock_text = (repo / "dvc.lock").read_text()
    lock = yaml.safe_load(lock_text)
    model = next(out for out in lock["stages"]["mlp_moons"]["outs"] if out["path"] == "models/mlp_moons")
    lock_text = lock_text.replace(model["md5"], "0" * 32 + ".dir")   # a version trained elsewhere
    (repo / "dvc.lock").write_text(lock_text)
    sh("git", "commit", "-qam", "outputs trained on another CPU", cwd=repo)
    weights = (repo / "models" / "mlp_moons" / "weights.npz").read_bytes()
    (repo / "metrics" / "perceptron.json").write_text("{}\n")   # a run's leftovers, which go back
    result = subprocess.run(["python", "-m", "nnlab.restore"], cwd=repo, env={**venv_env(), **GIT_ENV},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "models/mlp_moons" in lines[0] and "`dvc repro mlp_moons`" in lines[0], lines
    assert (repo / "models" / "mlp_moons" / "weights.npz").read_bytes() == weights
    assert not sh("git", "status", "--porcelain", "--untracked-files=no", cwd=repo).strip()
    status = sh("dvc", "status", cwd=repo)
    assert "mlp_moons" in status and "perceptron" not in status, status
