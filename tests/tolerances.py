"""Tolerances derived from the sums a comparison depends on, never from what one CPU printed.

A sum of ``n`` floating-point terms, added in any order, is off by at most
``gamma_n * sum|terms|`` with ``gamma_n = n*u / (1 - n*u)`` and ``u = eps/2``
the unit roundoff (Higham, *Accuracy and Stability of Numerical Algorithms*,
2nd ed., section 3.1). OpenBLAS, oneDNN and ATen pick their kernel, and with
it the order of every sum, per CPU; numpy's own reductions change order with
the array's shape. Two evaluations of one sum (two code paths, or one path on
two CPUs) therefore differ by at most twice that, ``n * eps * sum|terms|``
(``gamma_n`` is ``n*u`` to within 0.1% for every ``n*u`` below 1e-3 here).

That bound is the worst case; real rounding errors mostly cancel and come
out near ``sqrt(n) * u``, so a comparison within it stays far from flaky.
"""
from __future__ import annotations

import numpy as np

FLOAT32_EPS = float(np.finfo(np.float32).eps)
FLOAT64_EPS = float(np.finfo(np.float64).eps)


def sum_tolerance(n_terms: int, magnitude, dtype=np.float32):
    """Largest difference between two evaluations, in any orders, of a sum in ``dtype``.

    ``n_terms`` is how many terms the sum adds (for a product ``a @ b``, the
    length of the inner dimension); ``magnitude`` is the sum of their absolute
    values (for a product, ``|a| @ |b|``), a scalar or an array of them.
    """
    return n_terms * float(np.finfo(dtype).eps) * magnitude


def product_tolerance(a: np.ndarray, b: np.ndarray, dtype=np.float32) -> np.ndarray:
    """:func:`sum_tolerance` of every entry of ``a @ b``: ``a.shape[-1]`` terms of magnitude ``|a| @ |b|``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return sum_tolerance(a.shape[-1], np.abs(a) @ np.abs(b), dtype)


def assert_within(actual, expected, tolerance, what: str = "") -> None:
    """``|actual - expected| <= tolerance`` everywhere (``tolerance`` broadcasts), with the worst entry shown."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    excess = np.abs(actual - expected) - np.asarray(tolerance, dtype=np.float64)
    worst = np.unravel_index(np.argmax(excess), excess.shape) if excess.ndim else ()
    assert np.all(excess <= 0), (f"{what} differs by more than its derived tolerance at {worst}: "
                                 f"{actual[worst]!r} vs {expected[worst]!r}, "
                                 f"allowed {np.broadcast_to(tolerance, excess.shape)[worst]!r}")


def near_ties(scores: np.ndarray, tolerance: np.ndarray) -> int:
    """How many rows of ``scores`` could have their argmax flipped by errors within ``tolerance``.

    ``scores`` are exact (float64 references) and ``tolerance`` bounds, entry by
    entry, the difference of two evaluations: a row's argmax can differ between
    them only where its two best classes are closer than twice the row's
    largest tolerance.
    """
    top_two = np.sort(scores, axis=1)[:, -2:]
    return int(np.count_nonzero(top_two[:, 1] - top_two[:, 0] <= 2 * tolerance.max(axis=1)))
