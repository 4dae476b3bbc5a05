"""Rows of a ``.npy`` file read on demand, and the row numbers a key picks: what the MRI arrays and
the torch loop (:mod:`nnlab.torch_train`) both read through, in a module of its own so that
neither imports the other."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


# pragma: no mutate start (file reads: tests/test_mri_memory.py)
def row_indices(key, length: int, what: str) -> np.ndarray:
    """The rows a slice or a sequence of row numbers picks out of ``length`` rows (of ``what``)."""
    rows = np.arange(length)[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= length):
        raise IndexError(f"{what}: rows outside 0..{length - 1}")
    return rows


class NpyRows:
    """The rows of a ``.npy`` file, read on demand with ordinary file reads.

    ``rows[indices]``, ``rows[start:stop]`` and ``rows[i]`` return numpy arrays of just those rows;
    ``shape``, ``dtype`` and ``len`` are the file's. ``np.load(path, mmap_mode="r")`` would serve the
    same rows, but every page read through a mapping stays in the process's resident set while the
    mapping lives: one epoch over the real MRI train split made a training stage hold all 1.8 GB
    of it. Read with ``preadv``, the pages stay in the kernel's page cache (shared, and freed under
    pressure) and the process holds only the rows it asked for. Consecutive rows are read in one call.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version[0]}.{version[1]} (expected 1.0 or 2.0)")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran_order, self.dtype = read_header(handle)
            self.offset = handle.tell()
        if fortran_order or self.dtype.hasobject or not shape:
            raise ValueError("not a C-ordered array of rows")
        self.shape = tuple(shape)
        self.row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:]))
        size = self.path.stat().st_size
        if size < self.offset + len(self) * self.row_bytes:
            raise ValueError(f"truncated: {size} bytes where the header promises "
                             f"{self.offset + len(self) * self.row_bytes}")

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[:], dtype=dtype)

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, slice) and np.ndim(key) == 0:
            return self[[key]][0]
        rows = row_indices(key, len(self), str(self.path))
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if not len(rows):
            return out
        bounds = [0, *(np.flatnonzero(np.diff(rows) != 1) + 1), len(rows)]
        with open(self.path, "rb", buffering=0) as handle:
            for first, end in zip(bounds, bounds[1:]):
                view = memoryview(out[first:end]).cast("B")
                position = self.offset + int(rows[first]) * self.row_bytes
                while view:   # a regular file may still return fewer bytes than asked
                    done = os.preadv(handle.fileno(), [view], position)
                    if done == 0:
                        raise OSError(f"{self.path}: file shrank while being read")
                    view, position = view[done:], position + done
        return out
# pragma: no mutate end
