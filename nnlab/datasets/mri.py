"""Alzheimer MRI slices (report 001): the Kaggle folder loader and the class layout.

The real data is the Kaggle "Alzheimer's Dataset (4 class of Images)" in its own
layout, ``<root>/{train,test}/<class>/*.jpg``: grayscale JPEGs of 176x208
(W x H). :func:`load_folder` decodes one split with Pillow into a uint8 array.
Its policy on bad input is never to drop anything silently:

- a folder whose name is not one of :data:`CLASS_NAMES`, a missing split, a
  stray file beside the class folders or an empty split is always an error;
- a file Pillow cannot decode, or an image of another size, is an error naming
  the file (``on_bad_file="error"``) or a skip that is counted and listed in
  :attr:`Slices.skipped` (``on_bad_file="skip"``);
- an image is checked before it is decoded: its declared size (so a
  decompression bomb is never decoded) and its pixel type: 16-bit and wider
  images are refused, since converting them to 8-bit grey would clip them;
- hidden files (``.DS_Store``, ``._x.jpg`` from macOS archives) are not images
  and are passed over; colour images are converted to grey with Pillow's "L";
- an empty class folder is allowed (a small split may lack a class) but listed
  in :attr:`Slices.empty_folders`, for the stage to warn and record.

Files are read in the order of the numbers in their names (``mildDem2.jpg``
before ``mildDem10.jpg``): Kaggle numbered each class level by level, every
brain of the class at one axial level, then every brain at the next
(docs/studies/001.md), and :func:`split_validation` relies on that order.

The synthetic stand-in is :mod:`nnlab.datasets.mri_phantom`.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from nnlab.datasets.npy_rows import NpyRows
from nnlab.errors import DataError

# Sorted like the Kaggle folders (and torchvision's ImageFolder): class index 0
# is MildDemented, which is why the report's all-NaN network scored 13.99%,
# the share of MildDemented in the Kaggle test split (179 / 1279).
CLASS_NAMES = ("MildDemented", "ModerateDemented", "NonDemented", "VeryMildDemented")
KAGGLE_CLASS_SHARE = {"MildDemented": 0.14, "ModerateDemented": 0.01,
                      "NonDemented": 0.50, "VeryMildDemented": 0.35}
KAGGLE_HEIGHT, KAGGLE_WIDTH = 208, 176
#: Brains per class in the Kaggle training split: the n-th file of a class shows brain n mod this
#: count, one axial level above file n minus the count (docs/studies/001.md).
KAGGLE_BRAINS = {"MildDemented": 28, "ModerateDemented": 2, "NonDemented": 100, "VeryMildDemented": 70}
VALIDATION_SPLITS = ("block", "by_brain")
FOLDER_SPLITS = ("train", "test")                 # the Kaggle folders
SPLITS = ("train", "validation", "test")          # the data stages' arrays: validation is cut from train
BAD_FILE_POLICIES = ("error", "skip")
EIGHT_BIT_TYPES = ("|u1", "|b1")   # numpy type strings of Pillow modes whose bands hold at most 8 bits


@dataclass
class Slices:
    """One split: ``images`` uint8 (N, H, W), ``labels`` int64 indices into CLASS_NAMES; ``positions``
    (from a folder) each slice's place in its class's file order, counting skipped files."""

    images: np.ndarray
    labels: np.ndarray
    skipped: list[dict] = field(default_factory=list)   # [{"file": .., "reason": ..}]
    empty_folders: list[str] = field(default_factory=list)
    positions: np.ndarray | None = None

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(CLASS_NAMES))
        return {name: int(c) for name, c in zip(CLASS_NAMES, counts)}


def _file_order(path: Path) -> list:
    """Sort key of a file name that compares its runs of digits as numbers ("a2" before "a10")."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", path.name)]


# pragma: no mutate start (beyond `make mutate`, which covers the validation split: CONTRIBUTING.md)
def _image_files(split_dir: Path) -> tuple[list[tuple[Path, int, int]], list[str]]:
    """``(file, label, place in its class's file order)`` of every image, and the class folders that hold
    none. Nothing outside the dataset's folder is read: a symlink that leads out of it is refused, as the
    IMDB folder reader does."""
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: split folder not found (expected the Kaggle layout "
                        f"<root>/{{train,test}}/<class>/*.jpg)")
    files, empty_folders = [], []
    root = split_dir.parent.resolve()
    for entry in sorted(split_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            raise DataError(f"{entry}: unexpected file beside the class folders "
                            f"(expected only {', '.join(CLASS_NAMES)})")
        if entry.name not in CLASS_NAMES:
            raise DataError(f"{entry}: unknown class folder (expected one of {', '.join(CLASS_NAMES)})")
        label = CLASS_NAMES.index(entry.name)
        in_folder = [(path, label, place) for place, path in enumerate(
            path for path in sorted(entry.iterdir(), key=_file_order) if not path.name.startswith("."))]
        for path, _, _ in in_folder:
            target = path.resolve()
            if not target.is_relative_to(root):
                raise DataError(f"{path}: a link to {target}, outside {split_dir.parent}")
        if not in_folder:
            empty_folders.append(str(entry))
        files += in_folder
    if not files:
        raise DataError(f"{split_dir}: no images in any class folder")
    return files, empty_folders


class SliceSizeError(ValueError):
    """A slice of another size than the data set's (a Kaggle slice against a model of synthetic slices)."""


def count_files(root: str | Path) -> int:
    """The entries in the class folders of ``root``'s splits (0 for what is missing), counted without
    reading them."""
    return sum(1 for split in FOLDER_SPLITS for _ in Path(root, split).glob("*/*"))


@contextlib.contextmanager
def open_image(path: Path) -> Iterator["object"]:
    """The Pillow image at ``path``, not yet decoded; a file Pillow cannot read, or one whose header
    declares a possible decompression bomb, raises ValueError with the reason (also when the body's
    ``load()`` finds the file truncated). Every reader of image files opens them here (the MRI
    folder, ``python -m nnlab.predict`` for MRI slices and MNIST digits)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; either way the size is refused.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"refused as a possible decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"unreadable image ({exc})") from None


def decode_slice(path: Path, height: int, width: int) -> np.ndarray:
    """The image as uint8 (H, W); raises ValueError with the reason when unusable (SliceSizeError for its size)."""
    from PIL import ImageMode

    with open_image(path) as image:
        if image.size != (width, height):
            raise SliceSizeError(f"image is {image.size[0]}x{image.size[1]} (W x H), expected {width}x{height}")
        if ImageMode.getmode(image.mode).typestr not in EIGHT_BIT_TYPES:
            raise ValueError(f"{image.mode} image: more than 8 bits per pixel, which 8-bit grey would clip;"
                             f" save it as 8-bit grayscale")
        image.load()   # decode now: a truncated JPEG only fails here
        grey = image.convert("L")
    return np.asarray(grey, dtype=np.uint8)


def load_folder(root: str | Path, split: str, *, height: int = KAGGLE_HEIGHT, width: int = KAGGLE_WIDTH,
                on_bad_file: str = "error") -> Slices:
    """Decode ``<root>/<split>/<class>/*`` (see the module docstring for the error policy)."""
    from tqdm import tqdm

    if on_bad_file not in BAD_FILE_POLICIES:
        raise ValueError(f"on_bad_file must be one of {BAD_FILE_POLICIES}, not {on_bad_file!r}")
    files, empty_folders = _image_files(Path(root) / split)
    images = np.empty((len(files), height, width), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    positions = np.empty(len(files), dtype=np.int64)
    skipped = []
    kept = 0
    for path, label, place in tqdm(files, desc=f"decoding {split}", unit="img", disable=None):
        try:
            images[kept] = decode_slice(path, height, width)
        except ValueError as exc:
            if on_bad_file == "error":
                raise DataError(f"{path}: {exc} (set on_bad_file: skip to count and skip such files)") from None
            skipped.append({"file": str(path), "reason": str(exc)})
            continue
        labels[kept], positions[kept] = label, place
        kept += 1
    if kept == 0:
        raise DataError(f"{Path(root) / split}: every image was skipped as unusable")
    return Slices(images[:kept].copy() if kept < len(files) else images, labels[:kept], skipped, empty_folders,
                  positions[:kept])


# pragma: no mutate end
def split_validation(slices: Slices, fraction: float, brains: dict[str, int] | None = None) -> tuple[Slices, Slices]:
    """``(train, validation)``, held out of each class's slices in one of two ways.

    Without ``brains`` (``validation: block``): the last ``fraction`` of the slices, in file order.
    One contiguous block per class, not a random draw: the files run level by
    level, so the last block is the top axial levels of every brain, held out
    as Kaggle's own test split holds the levels above them. A random draw would
    put the next level of a validation slice's own brain, a near-copy, into
    training and flatter the validation score. Each class keeps at least one
    training slice; a class of one slice, or too small for ``fraction`` to
    round up to a slice, is not held out at all.

    With ``brains`` (``validation: by_brain``, the number of brains of each class,
    :data:`KAGGLE_BRAINS`): whole brains, every level of them. The brain of a slice is its
    place in its class's file order (``slices.positions``) modulo its class's count; the last
    ``fraction`` of the brains, at least one, are held out, and each class keeps at least one
    brain (ModerateDemented has 2: one of them is held out). This measures what Kaggle's split
    does not: how a model fares on brains it has never seen.
    """
    held_out = np.zeros(len(slices.labels), dtype=bool)
    for label, name in enumerate(CLASS_NAMES):
        rows = np.flatnonzero(slices.labels == label)
        if brains is None:
            n_held_out = min(round(len(rows) * fraction), len(rows) - 1)
            if n_held_out > 0:
                held_out[rows[len(rows) - n_held_out:]] = True
        elif brains[name] > 1:
            n_held_out = min(max(1, round(brains[name] * fraction)), brains[name] - 1)
            held_out[rows] = slices.positions[rows] % brains[name] >= brains[name] - n_held_out
    if not held_out.any() or held_out.all():
        raise DataError(f"a validation fraction of {fraction} holds out {'every' if held_out.any() else 'no'} "
                        f"slice of {len(slices.labels)}")
    return (Slices(slices.images[~held_out], slices.labels[~held_out], slices.skipped, slices.empty_folders),
            Slices(slices.images[held_out], slices.labels[held_out]))


# pragma: no mutate start (as above)
def read_info(directory: str | Path) -> dict:
    """The ``info.json`` a data stage leaves beside its arrays (source, class names, ...)."""
    import json

    path = Path(directory) / "info.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); run the MRI data stages first") from None


def open_arrays(directory: str | Path, names: tuple[str, ...]) -> dict[str, NpyRows]:
    """``<directory>/<name>.npy`` for each name, read a block of rows at a time (:class:`NpyRows`)."""
    arrays = {}
    for name in names:
        path = Path(directory) / f"{name}.npy"
        try:
            arrays[name] = NpyRows(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read ({exc}); run the MRI data stages first") from None
    return arrays


def normalized_datasets(directory: str | Path):
    """The ``mri_normalize`` output as ``({split: dataset} for SPLITS, info)`` for torch, read a batch at a time."""
    from nnlab.torch_train import ArrayDataset

    arrays = open_arrays(directory, tuple(f"{split}_{part}" for split in SPLITS for part in "xy"))
    return ({split: ArrayDataset(arrays[f"{split}_x"], arrays[f"{split}_y"]) for split in SPLITS},
            read_info(directory))
# pragma: no mutate end
