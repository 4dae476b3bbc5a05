"""The 2-D toy datasets of reports 000, 002 and 004: gaussians, moons, circles.

Each generator returns a :class:`Split` whose arrays are ready to save with
:meth:`Split.arrays`. Splits are stratified so each class keeps its share.
The generators import scikit-learn themselves: the stages that only
:func:`load_split` then start about 2 s sooner.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    extra: dict = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"X_train": self.X_train, "y_train": self.y_train,
                "X_test": self.X_test, "y_test": self.y_test, **self.extra}


def load_split(path) -> Split:
    """Read a split written by the ``generate`` stage."""
    from nnlab.errors import DataError

    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run `dvc repro generate` first)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz split: {exc}") from None
    missing = {"X_train", "y_train", "X_test", "y_test"} - arrays.keys()
    if missing:
        raise DataError(f"{path}: missing arrays {', '.join(sorted(missing))}")
    core = {k: arrays.pop(k) for k in ("X_train", "y_train", "X_test", "y_test")}
    return Split(**core, extra=arrays)


def load_circles(path) -> tuple[Split, tuple[np.ndarray, np.ndarray]]:
    """The circles split and its ``(grid_x, grid_y)`` mesh for decision surfaces."""
    from nnlab.errors import DataError

    split = load_split(path)
    if not {"grid_x", "grid_y"} <= split.extra.keys():
        raise DataError(f"{path}: missing the grid_x/grid_y mesh (rerun `dvc repro generate`)")
    return split, (split.extra["grid_x"], split.extra["grid_y"])


def _split(X, y, test_fraction: float, seed: int) -> tuple:
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=test_fraction, random_state=seed, stratify=y)


def gaussians(n_per_class: int, mean_pos, mean_neg, cov_pos, cov_neg,
              test_fraction: float, seed: int) -> Split:
    """Two Gaussian clouds labelled +1 and -1 (report 002 §1)."""
    rng = np.random.default_rng(seed)
    pos = rng.multivariate_normal(mean_pos, cov_pos, size=n_per_class)
    neg = rng.multivariate_normal(mean_neg, cov_neg, size=n_per_class)
    X = np.vstack([pos, neg])
    y = np.concatenate([np.ones(n_per_class), -np.ones(n_per_class)]).astype(np.int64)
    X_train, X_test, y_train, y_test = _split(X, y, test_fraction, seed)
    return Split(X_train, y_train, X_test, y_test)


def moons(n_samples: int, noise: float, test_fraction: float, seed: int) -> Split:
    """sklearn's two interleaving half circles, labels 0/1."""
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    X_train, X_test, y_train, y_test = _split(X, y.astype(np.int64), test_fraction, seed)
    return Split(X_train, y_train, X_test, y_test)


def circles(n_samples: int, noise: float, factor: float, test_fraction: float, seed: int,
            grid_extent: float, grid_step: float) -> Split:
    """Two concentric circles, labels 0/1, plus a dense grid for decision surfaces (report 004)."""
    from sklearn.datasets import make_circles

    X, y = make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    X_train, X_test, y_train, y_test = _split(X, y.astype(np.int64), test_fraction, seed)
    ticks = np.arange(-grid_extent, grid_extent + grid_step / 2, grid_step)
    xx, yy = np.meshgrid(ticks, ticks)
    return Split(X_train, y_train, X_test, y_test, extra={"grid_x": xx, "grid_y": yy})


def one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(y), n_classes))
    out[np.arange(len(y)), y] = 1.0
    return out
