"""The IDX reader: the real MNIST sample files, and files broken on purpose."""
from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest

from nnlab.datasets import idx, mnist
from nnlab.errors import DataError

from conftest import peak_memory_mib

T10K_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray, magic: int | None = None, shape: tuple | None = None) -> bytes:
    """An IDX file of ``array`` (uint8); ``magic``/``shape`` override the header to break it."""
    shape = array.shape if shape is None else shape
    magic = (0x0800 | array.ndim) if magic is None else magic
    return struct.pack(f">i{len(shape)}I", magic, *shape) + array.astype(np.uint8).tobytes()


def write(path, data: bytes, compress: bool = False):
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def make_idx_folder(folder, n_train=30, n_test=10, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    contents = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        for kind, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            name = f"{prefix}-{kind}" + (".gz" if compress else "")
            write(folder / name, idx_bytes(array), compress)
            contents[f"{prefix}-{kind}"] = array
    return contents


@pytest.fixture
def real_mnist(shared_data):
    folder = shared_data / "mnist"
    if not (folder / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("no MNIST sample in ../shared/data")
    return folder


def test_real_test_split(real_mnist):
    images, labels = idx.read_pair(real_mnist / "t10k-images-idx3-ubyte.gz", real_mnist / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == T10K_LABEL_COUNTS
    assert labels[:3].tolist() == [7, 2, 1]
    assert 0 < images.mean() < 255 and images.max() == 255


def test_real_train_labels(real_mnist):
    labels = idx.read_labels(real_mnist / "train-labels-idx1-ubyte.gz")
    assert labels.shape == (60000,) and labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_real_file_uncompressed(real_mnist, tmp_path):
    plain = tmp_path / "t10k-labels-idx1-ubyte"
    with gzip.open(real_mnist / "t10k-labels-idx1-ubyte.gz") as source, open(plain, "wb") as dest:
        shutil.copyfileobj(source, dest)
    np.testing.assert_array_equal(idx.read_labels(plain), idx.read_labels(real_mnist / "t10k-labels-idx1-ubyte.gz"))


def test_real_images_refused_as_labels(real_mnist):
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: wrong magic number 2051 \(expected 2049\)"):
        idx.read_labels(real_mnist / "t10k-images-idx3-ubyte.gz")


@pytest.mark.parametrize("compress", [False, True])
def test_folder_of_both_kinds(tmp_path, compress):
    contents = make_idx_folder(tmp_path / "mnist", compress=compress)
    split = mnist.load_idx_folder(tmp_path / "mnist")
    np.testing.assert_array_equal(split.images_train, contents["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(split.labels_test, contents["t10k-labels-idx1-ubyte"])
    assert split.sizes() == {"train": 30, "test": 10}


def test_folder_missing_file_is_named(tmp_path):
    make_idx_folder(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        mnist.load_idx_folder(tmp_path / "mnist")


IMAGES = np.zeros((3, 28, 28), dtype=np.uint8)
LABELS = np.array([1, 2, 3], dtype=np.uint8)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("data, reader, message", [
    (idx_bytes(IMAGES)[:-5], idx.read_images, r"truncated: header says 3 items"),
    (idx_bytes(IMAGES)[:10], idx.read_images, r"truncated header"),
    (b"\x00\x00", idx.read_images, r"truncated: 2 bytes"),
    (idx_bytes(IMAGES, magic=2049), idx.read_images, r"wrong magic number 2049 \(expected 2051\)"),
    (idx_bytes(LABELS, magic=0x12345678), idx.read_labels, r"wrong magic number 305419896"),
    (idx_bytes(IMAGES, shape=(4, 28, 28)), idx.read_images, r"truncated: header says 4 items"),
    (idx_bytes(LABELS, shape=(2,)), idx.read_labels, r"1 bytes after the 2 items"),
    (idx_bytes(np.zeros((2, 20, 20))), idx.read_images, r"images are 20x20, expected 28x28"),
    (idx_bytes(np.array([1, 10])), idx.read_labels, r"label 10 at item 1"),
    (idx_bytes(IMAGES, shape=(0, 28, 28)), idx.read_images, r"empty dimension"),
])
def test_broken_files_are_refused(tmp_path, data, reader, message, compress):
    path = write(tmp_path / "broken-idx", data, compress)
    with pytest.raises(DataError, match=message) as error:
        reader(path)
    assert str(path) in str(error.value)


def test_truncated_gzip(tmp_path):
    path = write(tmp_path / "cut.gz", gzip.compress(idx_bytes(IMAGES))[:-12])
    with pytest.raises(DataError, match=r"cut\.gz: corrupt or truncated gzip"):
        idx.read_images(path)


def test_images_and_labels_disagree(tmp_path):
    images = write(tmp_path / "images", idx_bytes(IMAGES))
    labels = write(tmp_path / "labels", idx_bytes(LABELS[:2]))
    with pytest.raises(DataError, match=r"images: 3 images but .*labels holds 2 labels"):
        idx.read_pair(images, labels)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothing-here: not found"):
        idx.read_labels(tmp_path / "nothing-here")


# -- a small file that expands to a lot ---------------------------------------------------

def gzip_bomb(path, head: bytes, expanded_mib: int):
    """``head`` then ``expanded_mib`` MiB of zeros, gzip-compressed to about a kB per MiB: gzip members
    concatenate, so one compressed MiB repeated makes the file without compressing a GiB."""
    path.write_bytes(gzip.compress(head) + gzip.compress(bytes(2**20)) * expanded_mib)
    return path


@pytest.mark.parametrize("head, message", [
    (idx_bytes(IMAGES), "1048576+ bytes after the 3 items the header declares"),
    (idx_bytes(IMAGES, magic=2049), "wrong magic number 2049"),
], ids=["valid-header", "wrong-magic"])
def test_gzip_bomb_is_refused_in_bounded_memory(tmp_path, head, message):
    """1 MB of gzip expanding to 1 GiB was decompressed whole: 13.7 s and a 2.0 GB peak."""
    path = gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", head, 1024)
    assert path.stat().st_size < 2_000_000
    error, peak = peak_memory_mib(f"from nnlab.datasets import idx; idx.read_images({str(path)!r})")
    assert error.startswith(str(path)) and message in error, error
    assert peak < 1024, f"peak {peak:.0f} MiB"
