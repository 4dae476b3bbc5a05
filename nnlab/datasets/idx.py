"""Reading the IDX files MNIST ships in (gzip-compressed or not), with checks.

The format (http://yann.lecun.com/exdb/mnist/): a big-endian header of a magic
number and one 32-bit size per dimension, then the unsigned bytes. The magic
number's third byte is the data type (0x08 = unsigned byte), its fourth the
number of dimensions, so images are 2051 (0x0803) and labels 2049 (0x0801).

Every problem (a truncated file, a wrong magic number, a size that does not
match the header) is a :class:`~nnlab.errors.DataError` naming the file. The
file is streamed, gzip or not: the header is checked before any data is read,
and no more data is read than it declares.
"""
from __future__ import annotations

import contextlib
import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from nnlab.errors import DataError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_SIGNATURE = b"\x1f\x8b"
# Data are read in blocks, so memory follows the bytes really there, never a header's claim.
_BLOCK = 1 << 24
# Bytes counted after the declared items for the message: a gzip bomb is not expanded to count them all.
_TRAILING_COUNTED = 1 << 20


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """The file's content, decompressed while it is read when it is gzip data."""
    try:
        with open(path, "rb") as raw:
            # Decide by content, not by name: a folder may hold .gz files that were unpacked but kept their name.
            compressed = raw.read(2) == _GZIP_SIGNATURE
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) if compressed else contextlib.nullcontext(raw) as content:
                yield content
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _read(content: BinaryIO, size: int) -> bytearray:
    """Up to ``size`` bytes; fewer at the end of the data."""
    data = bytearray()
    while len(data) < size:
        block = content.read(min(size - len(data), _BLOCK))
        if not block:
            break
        data += block
    return data


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """The uint8 array stored in the IDX file ``path``, whose magic number must be ``magic``.

    Reads no more than the header declares (and a bounded look past it), so a
    small compressed file cannot expand into memory.
    """
    path = Path(path)
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    with _opened(path) as content:
        head = _read(content, 4)
        if len(head) < 4:
            raise DataError(f"{path}: truncated: {len(head)} bytes, shorter than the IDX magic number")
        (found,) = struct.unpack(">i", head)
        if found != magic:
            raise DataError(f"{path}: wrong magic number {found} (expected {magic}): not an IDX "
                            f"{'image' if magic == IMAGES_MAGIC else 'label'} file")
        head += _read(content, header_size - 4)
        if len(head) < header_size:
            raise DataError(f"{path}: truncated header: {len(head)} bytes, the {ndim}-d header needs {header_size}")
        shape = struct.unpack(f">{ndim}I", head[4:])
        if any(size == 0 for size in shape):
            raise DataError(f"{path}: header has an empty dimension {shape}")
        expected = math.prod(shape)  # Python ints: sizes from the header must not wrap around
        data = _read(content, expected)
        if len(data) < expected:
            raise DataError(f"{path}: truncated: header says {shape[0]} items of shape {list(shape[1:])} "
                            f"({header_size + expected} bytes with the header), the file holds "
                            f"{header_size + len(data)}")
        trailing = len(_read(content, _TRAILING_COUNTED))
    if trailing:
        counted = f"{trailing}{'+' if trailing == _TRAILING_COUNTED else ''}"
        raise DataError(f"{path}: {counted} bytes after the {shape[0]} items the header declares "
                        "(count in the header does not match the data)")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def read_images(path: str | Path, rows: int = 28, cols: int = 28) -> np.ndarray:
    """An (n, rows, cols) uint8 image array from an IDX3 file."""
    images = read_idx(path, IMAGES_MAGIC)
    if images.shape[1:] != (rows, cols):
        raise DataError(f"{path}: images are {images.shape[1]}x{images.shape[2]}, expected {rows}x{cols}")
    return images


def read_labels(path: str | Path, n_classes: int = 10) -> np.ndarray:
    """An (n,) uint8 label array from an IDX1 file, every label below ``n_classes``."""
    labels = read_idx(path, LABELS_MAGIC)
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        raise DataError(f"{path}: label {labels[bad[0]]} at item {bad[0]} is not a class 0..{n_classes - 1}")
    return labels


def read_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images and their labels, checked to agree in count."""
    images, labels = read_images(images_path), read_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(f"{images_path}: {len(images)} images but {labels_path} holds {len(labels)} labels")
    return images, labels
