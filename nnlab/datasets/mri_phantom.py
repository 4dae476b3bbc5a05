"""Synthetic brain-like MRI phantom slices: the offline stand-in for the Kaggle MRI set.

Each slice is an axial "brain": a bright skull ring, a dark CSF gap, grey
cortex folded by dark sulci around white matter, and two dark lateral
ventricles, rendered on a grid with random head size, rotation, shift,
contrast, blur and noise. Dementia shows as atrophy: the brain shrinks away
from the skull, the cortex thins, sulci and ventricles widen.

The four classes get an atrophy *severity* of 0 (NonDemented), 1
(VeryMildDemented), 2 (MildDemented) or 3 (ModerateDemented) plus Gaussian
spread, so neighbouring classes overlap and no model reaches 100%. Class
counts follow the Kaggle balance (50 / 35 / 14 / 1 %). These images are
synthetic: figures measured on them say nothing about the real scans.
"""
from __future__ import annotations

import numpy as np

from nnlab.datasets.mri import CLASS_NAMES, KAGGLE_CLASS_SHARE, Slices

SEVERITY = {"NonDemented": 0.0, "VeryMildDemented": 1.0, "MildDemented": 2.0, "ModerateDemented": 3.0}


def class_counts(n: int) -> np.ndarray:
    """Per-class counts summing to ``n`` in the Kaggle shares (largest remainder)."""
    shares = np.array([KAGGLE_CLASS_SHARE[name] for name in CLASS_NAMES])
    exact = shares * n
    counts = np.floor(exact).astype(int)
    remainder_order = np.argsort(-(exact - counts), kind="stable")
    counts[remainder_order[: n - counts.sum()]] += 1
    return counts


def _blur(image: np.ndarray) -> np.ndarray:
    """3x3 binomial smoothing: the partial-volume softness of a real scan."""
    padded = np.pad(image, 1, mode="edge")
    rows = (padded[:-2] + 2 * padded[1:-1] + padded[2:]) / 4
    return (rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]) / 4


def render_slice(severity: float, height: int, width: int, rng: np.random.Generator,
                 noise: float) -> np.ndarray:
    """One phantom slice as floats in about [0, 1]; ``severity`` 0 (healthy) to 3+."""
    ys, xs = np.mgrid[-1:1:height * 1j, -1:1:width * 1j]
    xs = xs - rng.normal(0, 0.03)
    ys = ys - rng.normal(0, 0.03)
    angle = rng.normal(0, 0.08)
    x = np.cos(angle) * xs - np.sin(angle) * ys
    y = np.sin(angle) * xs + np.cos(angle) * ys
    head = rng.normal(1.0, 0.04)
    # Elliptic radius on the grid that spans the image: 1 on the outer edge of the skull.
    radius = np.hypot(x / (0.85 * head), y / (0.93 * head))
    theta = np.arctan2(y, x)

    atrophy = max(severity, 0.0)
    brain_edge = 0.86 - 0.03 * atrophy                       # brain pulls away from the skull
    cortex_inner = brain_edge - (0.16 - 0.022 * atrophy)      # thinner cortex
    folds = rng.integers(14, 20)
    sulcus_width = 0.12 + 0.07 * atrophy                      # share of each fold that is CSF
    phase = rng.uniform(0, 2 * np.pi)
    in_sulcus = (np.cos(folds * theta + phase) + 1) / 2 < sulcus_width

    image = np.zeros((height, width))
    image[(radius > 0.92) & (radius <= 1.0)] = 0.95           # skull ring
    image[(radius > brain_edge) & (radius <= 0.92)] = 0.12    # CSF between skull and brain
    cortex = (radius > cortex_inner) & (radius <= brain_edge)
    image[cortex] = 0.5
    image[cortex & in_sulcus] = 0.12
    image[radius <= cortex_inner] = 0.8                       # white matter

    # Two lateral ventricles, mirror images about the midline, widening with atrophy.
    size = rng.normal(1.0, 0.08) * (1 + 0.22 * atrophy)
    for side in (-1, 1):
        vx = (x - side * 0.11 * size) / (0.07 * size)
        vy = (y + 0.05) / (0.28 * size)
        image[vx**2 + vy**2 <= 1] = 0.1

    image = _blur(image) * rng.normal(1.0, 0.05)
    return image + rng.normal(0, noise, image.shape)


def phantom_slices(n: int, *, height: int, width: int, noise: float, severity_spread: float,
                   rng: np.random.Generator) -> Slices:
    """``n`` synthetic slices in the Kaggle class balance, shuffled."""
    labels = np.repeat(np.arange(len(CLASS_NAMES)), class_counts(n))
    rng.shuffle(labels)
    images = np.empty((n, height, width), dtype=np.uint8)
    for i, label in enumerate(labels):
        severity = SEVERITY[CLASS_NAMES[label]] + rng.normal(0, severity_spread)
        slice_ = render_slice(severity, height, width, rng, noise)
        images[i] = np.clip(np.rint(slice_ * 255), 0, 255).astype(np.uint8)
    return Slices(images, labels.astype(np.int64))


def phantom_splits(*, n_train: int, n_test: int, height: int, width: int, noise: float,
                   severity_spread: float, seed: int) -> dict[str, Slices]:
    """Independent train and test sets from one seed."""
    rng = np.random.default_rng(seed)
    return {split: phantom_slices(n, height=height, width=width, noise=noise,
                                  severity_spread=severity_spread, rng=rng)
            for split, n in (("train", n_train), ("test", n_test))}
