"""Losses: ``forward(pred, target) -> float`` (mean over the batch) and ``backward() -> dL/dpred``.

Each loss also knows how to read class predictions off the network output
(``accuracy``), so :meth:`Sequential.train` can score any of them.
"""
from __future__ import annotations

import numpy as np

from nnlab.nn.layers import row_max, row_sums, sigmoid, softmax


class Loss:
    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def accuracy(self, pred: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def probabilities(self, pred: np.ndarray) -> np.ndarray:
        """What the network output says about the classes, as probabilities (for decision surfaces)."""
        return pred


def _class_labels(target: np.ndarray) -> np.ndarray:
    """Integer labels from integer labels or one-hot rows."""
    target = np.asarray(target)
    return target.argmax(axis=1) if target.ndim == 2 else target.astype(np.intp)


class CrossEntropy(Loss):
    """Softmax fused with cross-entropy on logits, stable through log-sum-exp.

    ``target`` is integer labels of shape ``(B,)`` or one-hot rows ``(B, C)``.
    The gradient with respect to the logits is ``(softmax - y) / B``.
    """

    def forward(self, logits: np.ndarray, target: np.ndarray) -> float:
        shifted = logits - row_max(logits)[:, None]
        exps = np.exp(shifted)
        totals = row_sums(exps)
        target = np.asarray(target)
        # log p = shifted - log(total): summed over the picked entries without forming log p
        if target.ndim == 1:
            picked = shifted[np.arange(len(target)), target].sum() - np.log(totals).sum()
        else:
            picked = np.einsum("ij,ij->", target, shifted) - np.log(totals) @ row_sums(target)
        exps /= totals[:, None]
        self._probs = exps
        self._target = target
        return -float(picked) / len(target)

    def backward(self) -> np.ndarray:
        grad = self._probs.copy()
        if self._target.ndim == 1:
            grad[np.arange(len(self._target)), self._target] -= 1.0
        else:
            grad -= self._target
        grad /= len(grad)
        return grad

    def accuracy(self, logits: np.ndarray, target: np.ndarray) -> float:
        return float(np.mean(logits.argmax(axis=1) == _class_labels(target)))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits)


class BinaryCrossEntropy(Loss):
    """BCE on probabilities in (0, 1), clipped to [eps, 1 - eps] so log never sees 0.

    ``pred`` and ``target`` have the same shape (usually ``(B, 1)``); the mean runs over all entries.
    """

    def __init__(self, eps: float = 1e-12):
        self.eps = eps

    def forward(self, probs: np.ndarray, target: np.ndarray) -> float:
        # Plain ufuncs rather than np.clip / np.mean: with one sample per step their overhead dominates.
        p = np.minimum(np.maximum(probs, self.eps), 1.0 - self.eps)
        y = np.asarray(target).reshape(p.shape)
        self._p, self._y = p, y
        return -float((y * np.log(p) + (1.0 - y) * np.log1p(-p)).sum()) / p.size

    def backward(self) -> np.ndarray:
        p, y = self._p, self._y
        return (p - y) / (p * (1.0 - p)) / p.size

    def accuracy(self, probs: np.ndarray, target: np.ndarray) -> float:
        return float(np.mean((probs >= 0.5) == (np.asarray(target).reshape(probs.shape) >= 0.5)))


class BinaryCrossEntropyWithLogits(Loss):
    """BCE on logits: ``mean(log(1 + e^z) - y z)``, finite for any z; gradient ``(sigmoid(z) - y) / n``."""

    def forward(self, logits: np.ndarray, target: np.ndarray) -> float:
        y = np.asarray(target, dtype=logits.dtype).reshape(logits.shape)
        self._z, self._y = logits, y
        return float((np.logaddexp(0.0, logits) - y * logits).sum()) / logits.size

    def backward(self) -> np.ndarray:
        return (sigmoid(self._z) - self._y) / self._z.size

    def accuracy(self, logits: np.ndarray, target: np.ndarray) -> float:
        return float(np.mean((logits >= 0) == (np.asarray(target).reshape(logits.shape) >= 0.5)))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits)


class MSE(Loss):
    """Mean squared error over all entries (torch's ``MSELoss`` with mean reduction)."""

    def forward(self, pred: np.ndarray, target: np.ndarray) -> float:
        self._residual = pred - np.asarray(target, dtype=pred.dtype).reshape(pred.shape)
        return float(np.square(self._residual).sum()) / self._residual.size

    def backward(self) -> np.ndarray:
        return 2.0 * self._residual / self._residual.size

    def accuracy(self, pred: np.ndarray, target: np.ndarray) -> float:
        """Argmax agreement for one-hot targets; 0.5 threshold for a single output column."""
        target = np.asarray(target)
        if pred.ndim == 2 and pred.shape[1] > 1:
            return float(np.mean(pred.argmax(axis=1) == _class_labels(target)))
        return float(np.mean((pred >= 0.5) == (target.reshape(pred.shape) >= 0.5)))
