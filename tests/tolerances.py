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


def softmax_mlp_tolerances(X: np.ndarray, Y: np.ndarray, layers, activation: str, dtype=np.float32,
                            output_roundings: int = 0) -> dict:
    """Bounds on two evaluations (any kernels) of a softmax cross-entropy MLP: forward, loss and gradients.

    ``layers`` are ``(W, b)`` with ``W`` of shape ``(in, out)`` (``z = a @ W + b``),
    ``activation`` (``"tanh"`` or ``"relu"``) sits between them, ``Y`` is one-hot
    and the loss is the mean over the rows. Every bound is the rule of this
    module carried through the network (first-order running error analysis):
    each product or sum adds :func:`sum_tolerance` of its own terms, each
    operand's bound passes through at most its coefficient's magnitude
    (``|tanh'|, |relu'| <= 1``), a libm function (tanh, exp, log) counts as two
    roundings (one ulp), and softmax, computed as ``exp(z - max) / sum``, adds
    ``D + 5`` roundings relative to its outputs, amplified by the shifted
    logits ``|z - max|`` the exponent rounds, plus twice the logits' own bound.

    A loss computed unfused (sigmoid, then BCE on the probability: its gradient
    passes through ``1 / (p (1 - p))`` and back) rounds the output gradient
    ``output_roundings`` more times, relative to it.

    Returns ``logits``, ``probs`` and per-row ``loss`` bounds (arrays like them),
    the batch-mean ``mean_loss`` bound, and ``grads``: ``(W, b)`` bounds per layer.
    """
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    layers = [(np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64).reshape(-1)) for W, b in layers]
    a, tol_a = X, np.zeros_like(X)
    inputs = []
    for k, (W, b) in enumerate(layers):
        inputs.append((a, tol_a))
        z = a @ W + b
        tol_z = tol_a @ np.abs(W) + sum_tolerance(W.shape[0] + 1, np.abs(a) @ np.abs(W) + np.abs(b), dtype)
        if k == len(layers) - 1:
            break
        if activation == "tanh":
            a = np.tanh(z)
            tol_a = tol_z + sum_tolerance(2, np.abs(a), dtype)
        elif activation == "relu":
            # a mask that a rounding error could flip would break the bound: none may be that close to 0
            assert np.all(np.abs(z) > tol_z), "a ReLU input is within its rounding bound of 0"
            a = np.maximum(z, 0)
            tol_a = tol_z * (z > 0)
        else:
            raise ValueError(activation)
    n, classes = Y.shape
    shifted = z - z.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    spread = np.abs(shifted).max(axis=1, keepdims=True)
    relative = sum_tolerance(classes + 5, 1 + spread, dtype) + 2 * tol_z.max(axis=1, keepdims=True)
    tol_probs = probs * relative
    picked = np.sum(probs * Y, axis=1)
    loss = -np.log(picked)
    tol_loss = relative[:, 0] + sum_tolerance(2, loss, dtype)
    mean_loss = float(tol_loss.mean() + sum_tolerance(n + 1, loss.mean(), dtype))
    g = (probs - Y) / n
    tol_g = tol_probs / n + sum_tolerance(2, (probs + Y) / n, dtype) + sum_tolerance(output_roundings, np.abs(g), dtype)
    grads = []
    for k in reversed(range(len(layers))):
        W, _ = layers[k]
        a, tol_a = inputs[k]
        magnitude = np.abs(a).T @ np.abs(g)
        grads.append((tol_a.T @ np.abs(g) + np.abs(a).T @ tol_g + sum_tolerance(n + 1, magnitude, dtype),
                      tol_g.sum(axis=0) + sum_tolerance(n + 1, np.abs(g).sum(axis=0), dtype)))
        if k:
            back = g @ W.T
            tol_back = tol_g @ np.abs(W.T) + sum_tolerance(W.shape[1] + 1, np.abs(g) @ np.abs(W.T), dtype)
            if activation == "tanh":
                # 1 - a^2 from the rounded a: 2|a| tol_a, and two more roundings of 1 + a^2
                derivative = 1 - a ** 2
                tol_derivative = 2 * np.abs(a) * tol_a + sum_tolerance(2, 1 + a ** 2, dtype)
            else:
                derivative, tol_derivative = (a > 0).astype(np.float64), np.zeros_like(a)
            tol_g = tol_back * np.abs(derivative) + np.abs(back) * tol_derivative + sum_tolerance(1, np.abs(back * derivative), dtype)
            g = back * derivative
    return {"logits": tol_z, "probs": tol_probs, "loss": tol_loss, "mean_loss": mean_loss,
            "grads": grads[::-1]}
