"""Writing stage outputs so that a failed or interrupted stage leaves nothing half-written.

A stage collects its outputs in a :class:`StageOutputs` transaction: every
file goes to a hidden temporary sibling first and all of them are renamed
into place only when the ``with`` block ends without an exception::

    with StageOutputs() as out:
        out.json("metrics/mlp_moons.json", metrics)
        out.csv("plots/mlp_moons/history.csv", history_rows)
        out.figure("plots/mlp_moons/curves.png", fig)

On an exception (a bad parameter, Ctrl-C) the temporaries are removed and
the previous outputs, if any, are left as they were.

JSON is written with ``allow_nan=False`` after :func:`to_jsonable` has
turned NaN and infinities into ``null``, so a metrics file is always valid JSON.
Floats are written to :data:`SIGNIFICANT_DIGITS` significant digits, as CSV
cells are: the last bits of a float32 sum depend on the CPU's kernels, and they
should not show up as changes in `dvc metrics diff` or in git.
"""
from __future__ import annotations

import glob
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: Significant digits of every float in JSON and CSV outputs.
SIGNIFICANT_DIGITS = 6


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` over ``final`` with the permissions a plain open() would give.

    mkstemp/mkdtemp create owner-only files; outputs should be as readable as
    any other file the user writes.
    """
    mask = _umask()
    if tmp.is_dir():
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
        if final.exists():
            shutil.rmtree(final)
    else:
        tmp.chmod(0o666 & ~mask)
    os.replace(tmp, final)


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


class StageOutputs:
    """All-or-nothing publication of a stage's output files (see module docstring)."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def __enter__(self) -> "StageOutputs":
        return self

    def _reserve(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp{path.suffix}"):
            stale.unlink()  # left by an earlier run killed while it published its outputs
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
        self._pending.append((Path(tmp), path))
        return Path(tmp)

    def path(self, path: str | Path) -> Path:
        """A temporary file to write ``path``'s content to yourself (e.g. np.save)."""
        return self._reserve(path)

    def directory(self, path: str | Path) -> Path:
        """A temporary directory that replaces the directory ``path`` on commit."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        self._pending.append((tmp, path))
        return tmp

    def text(self, path: str | Path, text: str) -> None:
        self._reserve(path).write_text(text, encoding="utf-8")

    def json(self, path: str | Path, obj: Any) -> None:
        self.text(path, dumps_json(obj))

    def csv(self, path: str | Path, rows: Any) -> None:
        self.text(path, _csv_text(rows))

    def figure(self, path: str | Path, fig) -> None:
        import matplotlib.pyplot as plt

        fig.savefig(self._reserve(path), format="png", dpi=100, metadata={"Software": None})
        plt.close(fig)

    def npz(self, path: str | Path, **arrays: np.ndarray) -> None:
        with open(self._reserve(path), "wb") as handle:
            np.savez(handle, **arrays)

    def write(self, path: str | Path, writer: Callable[[Path], None]) -> None:
        """Let ``writer(tmp_path)`` produce the file's content."""
        writer(self._reserve(path))

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            for tmp, final in self._pending:
                _publish(tmp, final)
        else:
            for tmp, _ in self._pending:
                if tmp.is_dir():
                    shutil.rmtree(tmp, ignore_errors=True)
                elif tmp.exists():
                    tmp.unlink()
        self._pending.clear()
