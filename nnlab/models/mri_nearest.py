"""A nearest-neighbour lookup among MRI slices: the reference row with no learning (stage ``mri_nearest``).

Each slice takes the class of the reference slice whose pixels it correlates with most (Pearson
correlation of the slices average-pooled ``pool`` x ``pool``). The Kaggle test split holds further
axial levels of the training brains (docs/studies/001.md), and a slice correlates with the next
level of its own brain far more than with other brains at its level, so this lookup scores what
recognising the brain gives, the figure a network has to beat to have learnt more than that.

Memory is bounded by ``chunk_size``: the slices are pooled a chunk at a time into unit rows (the
pooled slices of the real train split are 150 MB of float32), and the correlations are computed
for ``chunk_size`` queries at a time, against each part of the reference set in turn, never
against a concatenated copy.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def unit_rows(images, pool: int, chunk_size: int) -> np.ndarray:
    """``(N, (H // pool) * (W // pool))`` float32: each slice (N, H, W) average-pooled, centred and
    scaled to unit length, so that the product of two rows is the slices' correlation (a blank
    slice stays all zeros). Rows and columns beyond a multiple of ``pool`` are dropped."""
    n, height, width = images.shape
    rows, columns = height // pool, width // pool
    out = np.empty((n, rows * columns), dtype=np.float32)
    for start in range(0, n, chunk_size):
        chunk = np.asarray(images[start:start + chunk_size], dtype=np.float32)[:, :rows * pool, :columns * pool]
        pooled = chunk.reshape(len(chunk), rows, pool, columns, pool).mean(axis=(2, 4)).reshape(len(chunk), -1)
        pooled -= pooled.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out[start:start + len(chunk)] = pooled / np.where(norms > 0, norms, 1)
    return out


def nearest_labels(queries: np.ndarray, references: Sequence[tuple[np.ndarray, np.ndarray]], chunk_size: int,
                   *, themselves_from: int | None = None) -> np.ndarray:
    """The label of each query row's most correlated reference row.

    ``references`` is a list of ``(unit rows, labels)`` parts, searched as if concatenated (the
    first row wins a tie). ``themselves_from``: the queries are the rows of that concatenation from
    this index on, and each skips itself (leave-one-out).
    """
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    predicted = np.zeros(len(queries), dtype=np.int64)
    offset = 0
    for rows, labels in references:
        for start in range(0, len(queries), chunk_size):
            similarity = queries[start:start + chunk_size] @ rows.T
            if themselves_from is not None:
                own = themselves_from + np.arange(start, start + len(similarity)) - offset
                inside = (own >= 0) & (own < len(rows))
                similarity[np.flatnonzero(inside), own[inside]] = -np.inf
            column = similarity.argmax(axis=1)
            score = similarity[np.arange(len(similarity)), column]
            better = score > best[start:start + len(similarity)]
            best[start:start + len(similarity)][better] = score[better]
            predicted[start:start + len(similarity)][better] = labels[column[better]]
        offset += len(rows)
    return predicted
