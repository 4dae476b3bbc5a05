"""Per-pixel standardisation of image stacks in bounded memory.

At the report's full size the standardised train set is 5121 x 3 x 208 x 176
float32, about 2.2 GB, and the report's ``StandardScaler().fit_transform`` on
the float64 copy needs several times that. Here:

- the scaler is fitted on the *grey* slices only (H*W features): stacking the
  slice into 3 identical channels gives every channel the same per-pixel mean
  and deviation, so fitting 3*H*W features would only triple the work;
- :func:`fit_pixel_scaler` feeds scikit-learn's ``StandardScaler.partial_fit``
  ``chunk_size`` images at a time, so no copy of the whole matrix is made;
- :func:`write_standardized` streams the result chunk by chunk into a ``.npy``
  file that training reads a batch at a time (:class:`nnlab.datasets.npy_rows.NpyRows`).

Peak memory is then a few chunks plus the pages of the uint8 input.
"""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np


def chunk_bytes_per_pixel(channels: int) -> int:
    """Bytes per pixel of a chunk being fitted or standardised: float64 copies in ``partial_fit``, the
    float32 input, transform's output and the ``channels`` stacked copies."""
    return 3 * 8 + 4 * (2 + channels)


def fit_pixel_scaler(images: np.ndarray, chunk_size: int):
    """A ``StandardScaler`` over the H*W pixels of ``images`` (N, H, W), fitted chunk by chunk."""
    from sklearn.preprocessing import StandardScaler
    from tqdm import tqdm

    scaler = StandardScaler()
    n = len(images)
    for start in tqdm(range(0, n, chunk_size), desc="fitting scaler", unit="chunk", disable=None):
        chunk = np.asarray(images[start:start + chunk_size], dtype=np.float64)
        scaler.partial_fit(chunk.reshape(len(chunk), -1))
    return scaler


def standardize_chunk(images: np.ndarray, scaler, channels: int) -> np.ndarray:
    """(n, H, W) raw slices -> (n, channels, H, W) float32 standardised."""
    n, height, width = images.shape
    flat = scaler.transform(np.asarray(images, dtype=np.float32).reshape(n, -1))
    grey = flat.astype(np.float32, copy=False).reshape(n, 1, height, width)
    return np.repeat(grey, channels, axis=1)


def _write_npy_header(handle: BinaryIO, shape: tuple[int, ...]) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_2_0(handle, header)


def write_standardized(images: np.ndarray, scaler, channels: int, chunk_size: int, path: str | Path,
                       *, desc: str = "standardizing") -> None:
    """Stream ``images`` standardised by ``scaler`` into a float32 ``.npy`` at ``path``.

    Writing through a file handle rather than a writable memmap keeps the
    output's pages out of this process's resident memory.
    """
    from tqdm import tqdm

    n, height, width = images.shape
    with open(path, "wb") as handle:
        _write_npy_header(handle, (n, channels, height, width))
        for start in tqdm(range(0, n, chunk_size), desc=desc, unit="chunk", disable=None):
            standardize_chunk(images[start:start + chunk_size], scaler, channels).tofile(handle)


SCALER_KIND = "mri_scaler"


def save_pixel_scaler(directory: Path, scaler, *, height: int, width: int, channels: int,
                      class_names: list[str], source: str) -> None:
    """The fitted scaler and the slice format it expects, for new slices (``nnlab.predict``)."""
    from nnlab import artifacts

    artifacts.save_arrays(directory, {"mean": scaler.mean_, "scale": scaler.scale_, "var": scaler.var_})
    artifacts.write_spec(directory, SCALER_KIND, height=height, width=width, channels=channels,
                         class_names=class_names, source=source)


def load_pixel_scaler(directory: str | Path) -> tuple[object, dict]:
    """The scaler :func:`save_pixel_scaler` wrote, rebuilt so that :func:`standardize_chunk`
    gives the very numbers the pipeline's arrays hold, and its spec."""
    from sklearn.preprocessing import StandardScaler

    from nnlab import artifacts

    spec = artifacts.read_spec(directory, SCALER_KIND, "mri_normalize")
    arrays = artifacts.load_arrays(directory)
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_, scaler.var_ = arrays["mean"], arrays["scale"], arrays["var"]
    scaler.n_features_in_ = len(scaler.mean_)
    return scaler, spec
