"""Writing stage outputs so that a failed or interrupted stage leaves nothing half-written.

A stage collects its outputs in a :class:`StageOutputs` transaction: every
file or folder goes to a hidden temporary sibling first, and all of them are
moved into place only when the ``with`` block ends without an exception::

    with StageOutputs() as out:
        out.json("metrics/mlp_moons.json", metrics)
        out.csv("plots/mlp_moons/history.csv", history_rows)
        out.figure("plots/mlp_moons/curves.png", fig)

On an exception (a bad parameter, Ctrl-C) the temporaries are removed and
the previous outputs, if any, are left as they were. An output that cannot be
written (no permission, a full disk, ``ulimit -f``) is an
:class:`~nnlab.errors.OutputError` naming it.

Publishing several outputs takes several renames, so it is journalled: the
list of moves is written to ``.publishing.<random>.tmp.json`` in the working
directory (where the stage's relative output paths start) before the first
move, and removed after the last. A process killed before the journal exists
leaves the old outputs; one killed after it leaves a journal that the next
``StageOutputs`` (of any stage) completes before it does anything else. The
journal is locked while its process lives, so a concurrent stage never
completes another's publishing. A folder cannot be renamed over a folder: the
old one is moved aside to ``<temporary>.old`` first, and removed last.
Temporaries of a run killed before it published are removed when an output
of the same name is next reserved.

JSON is written with ``allow_nan=False`` after :func:`to_jsonable` has
turned NaN and infinities into ``null``, so a metrics file is always valid JSON.
Floats are written to :data:`SIGNIFICANT_DIGITS` significant digits, as CSV
cells are: the last bits of a float32 sum depend on the CPU's kernels, and they
should not show up as changes in `dvc metrics diff` or in git.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np

#: Significant digits of every float in JSON and CSV outputs.
SIGNIFICANT_DIGITS = 6

from nnlab.errors import OutputError

JOURNAL_PREFIX = ".publishing."
# A journal being written, then the complete one; both match .gitignore's `.*.tmp*`.
JOURNAL_PART, JOURNAL_DONE = ".tmp.part", ".tmp.json"
# Errors of a write whose OSError carries no file name (write() on a full disk or past ulimit -f). numpy's
# ndarray.tofile (np.save to a path) reports the same short write with no errno at all: None.
UNNAMED_WRITE_ERRORS = {errno.EFBIG, errno.ENOSPC, errno.EDQUOT, None}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _give_ordinary_permissions(tmp: Path) -> None:
    """mkstemp/mkdtemp create owner-only files; outputs should be as readable as any file the user writes."""
    mask = _umask()
    for path in [tmp, *tmp.rglob("*")] if tmp.is_dir() else [tmp]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _temporaries_of(final: Path) -> re.Pattern:
    """Names of the temporaries (and moved-aside folders) of ``final``: ``.<name>.<random>.tmp...``."""
    return re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9_]+\.tmp.*")  # [a-z0-9_]: mkstemp's random letters


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        os.unlink(path)


def _remove_leftovers(final: Path) -> None:
    """Temporaries an earlier run of the same output left (killed before it published)."""
    pattern = _temporaries_of(final)
    for entry in final.parent.iterdir():
        if pattern.fullmatch(entry.name):
            _remove(entry)


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` over ``final``; repeating it after a kill at any point finishes the job."""
    aside = tmp.with_name(tmp.name + ".old")
    if tmp.is_dir():
        if final.exists():  # os.replace cannot replace a non-empty folder
            os.replace(final, aside)
        os.replace(tmp, final)
    elif tmp.exists():
        os.replace(tmp, final)
    if aside.exists():
        _remove(aside)


def _held_by_a_live_process(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    return False


def finish_interrupted_publishing(directory: Path = Path(".")) -> None:
    """Complete the publishing a killed stage journalled in ``directory``; drop unfinished journals."""
    for journal in sorted(directory.glob(f"{JOURNAL_PREFIX}*.tmp.*")):
        try:
            handle = open(journal, "rb")
        except FileNotFoundError:  # its stage has just finished
            continue
        with handle:
            if _held_by_a_live_process(handle):
                continue  # its stage is alive and publishing
            if journal.name.endswith(JOURNAL_DONE):
                for move in json.loads(handle.read()):
                    _move_into_place(directory / move["temporary"], directory / move["final"])
            with contextlib.suppress(FileNotFoundError):
                os.unlink(journal)


def to_jsonable(obj: Any) -> Any:
    """Plain Python for JSON: numpy scalars and arrays unwrapped, NaN/inf as None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(value) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"


def _csv_text(rows: Any) -> str:
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    # Empty cells, not "nan", for values a diverged run never reached.
    return frame.to_csv(index=False, float_format=f"%.{SIGNIFICANT_DIGITS}g", na_rep="")


def replace_file(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Replace ``path`` at once with what ``write`` writes into the open file handle it is given, for
    a file rewritten while a stage runs (a training checkpoint; a stage's results go through
    :class:`StageOutputs`). Written straight to the file, a large checkpoint is never held in memory.

    The bytes go to a temporary sibling, are flushed to the disk (a preempted machine may lose what the
    kernel had not written) and renamed over ``path``, so a kill leaves the old file or the new one.
    """
    final = Path(path)
    with _writing(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(final)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{final.suffix}", dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            _give_ordinary_permissions(Path(tmp))
            os.replace(tmp, final)
        except BaseException:
            _remove(Path(tmp))
            raise


class StageOutputs:
    """All-or-nothing publication of a stage's output files and folders (see module docstring)."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []   # (temporary, final)

    def __enter__(self) -> "StageOutputs":
        finish_interrupted_publishing()
        return self

    def _reserve(self, path: str | Path, *, folder: bool) -> Path:
        final = Path(path)
        with _writing(final):
            final.parent.mkdir(parents=True, exist_ok=True)
            _remove_leftovers(final)
            prefix = f".{final.name}."
            if folder:
                tmp = tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=final.parent)
            else:
                fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=f".tmp{final.suffix}", dir=final.parent)
                os.close(fd)
        self._pending.append((Path(tmp), final))
        return Path(tmp)

    def path(self, path: str | Path) -> Path:
        """A temporary file to write ``path``'s content to yourself (e.g. np.save)."""
        return self._reserve(path, folder=False)

    def directory(self, path: str | Path) -> Path:
        """A temporary directory that replaces the directory ``path`` on commit."""
        return self._reserve(path, folder=True)

    def write(self, path: str | Path, writer: Callable[[Path], None]) -> None:
        """Let ``writer(tmp_path)`` produce the file's content."""
        tmp = self.path(path)
        with _writing(Path(path)):
            writer(tmp)

    def text(self, path: str | Path, text: str) -> None:
        self.write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def json(self, path: str | Path, obj: Any) -> None:
        self.text(path, dumps_json(obj))

    def csv(self, path: str | Path, rows: Any) -> None:
        self.text(path, _csv_text(rows))

    def figure(self, path: str | Path, fig) -> None:
        import matplotlib.pyplot as plt

        try:
            self.write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None}))
        finally:
            plt.close(fig)

    def npz(self, path: str | Path, **arrays: np.ndarray) -> None:
        def save(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        self.write(path, save)

    def __exit__(self, exc_type, exc, tb) -> None:
        pending, self._pending = self._pending, []
        if exc_type is not None:
            culprit = self._failed_output(pending, exc) if isinstance(exc, OSError) else None
            for tmp, _ in pending:
                _remove(tmp)
            if culprit is not None:
                raise _cannot_write(culprit, exc) from None
            return
        for tmp, _ in pending:
            _give_ordinary_permissions(tmp)
        self._publish(pending)

    @staticmethod
    def _failed_output(pending: list[tuple[Path, Path]], exc: OSError) -> Path | None:
        """The output a stage was writing itself (into ``path()`` or ``directory()``) when ``exc`` came;
        None when ``exc`` is about some other file."""
        written = {}   # temporary file -> the output it becomes
        for tmp, final in pending:
            written[tmp] = final
            if tmp.is_dir():
                written.update({inner: final / inner.relative_to(tmp) for inner in tmp.rglob("*")})
        if exc.filename is not None:
            return written.get(Path(exc.filename))
        if exc.errno not in UNNAMED_WRITE_ERRORS:
            return None
        # write() errors name no file: the one that failed is the one written last.
        files = [path for path in written if path.is_file()]
        return written[max(files, key=lambda path: path.stat().st_mtime_ns)] if files else None

    @staticmethod
    def _publish(pending: list[tuple[Path, Path]]) -> None:
        moves = [{"temporary": str(tmp), "final": str(final)} for tmp, final in pending]
        part = None
        try:
            fd, part = tempfile.mkstemp(prefix=JOURNAL_PREFIX, suffix=JOURNAL_PART, dir=".")
            journal = os.fdopen(fd, "w", encoding="utf-8")
            fcntl.flock(journal, fcntl.LOCK_EX)  # held until the last move: no other stage completes it meanwhile
            journal.write(json.dumps(moves))
            journal.flush()  # out of Python's buffer before the commit point below
        except OSError as exc:
            for tmp in [*(tmp for tmp, _ in pending), *([Path(part)] if part else [])]:
                _remove(tmp)
            raise OutputError(f"cannot write the publishing journal in {Path.cwd()}: {exc.strerror or exc}") from None
        with journal:
            done = part[:-len(JOURNAL_PART)] + JOURNAL_DONE
            os.replace(part, done)  # the commit point: from here on, the next start completes the moves
            for tmp, final in pending:
                try:
                    _move_into_place(tmp, final)
                except OSError as exc:
                    raise _cannot_write(final, exc) from None  # the journal stays: the next start retries
            os.unlink(done)


@contextlib.contextmanager
def _writing(final: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _cannot_write(final, exc) from None


def _cannot_write(final: Path, exc: OSError) -> OutputError:
    """One line naming the output, and the folder in its way when that is the cause."""
    blocker = exc.filename is not None and Path(exc.filename) in final.parents
    reason = exc.strerror or (f"disk full or file size limit reached ({exc})" if exc.errno is None else exc)
    return OutputError(f"cannot write {final}: {reason}" + (f" ({exc.filename})" if blocker else ""))
