"""The perceptron of report 002 §1-2, trained with the standard batch algorithm.

Inputs get a constant 1 appended, so the bias is the last weight. From
``w = 0``, every epoch takes one step on the whole training set::

    misclassified = y_i * (w . x_i) <= 0
    gradient      = -(1/N) * sum over misclassified of y_i x_i
    w            <- w - lr * gradient

and stops early at the first epoch after which no training point is
misclassified. The loss is the perceptron criterion, the mean over all points
of ``max(0, -y_i * (w . x_i))``.

Starting from zero, every weight vector along the way is ``lr`` times the one
a rate of 1 would give, so the predictions (and accuracies) do not depend on
``lr``; only the loss scales with it.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from nnlab import artifacts
from nnlab.errors import DataError
from nnlab.results import TrainResult

KIND = "perceptron"
LABELS = (-1, 1)


def with_bias(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((len(X), 1))])


def predict(w: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Labels +1/-1; a point on the line counts as +1."""
    return np.where(with_bias(X) @ w >= 0, 1, -1)


def criterion(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """The perceptron criterion: mean of ``max(0, -y * (w . x))``."""
    return float(np.mean(np.maximum(0.0, -y * (with_bias(X) @ w))))


def accuracy(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predict(w, X) == y))


class Perceptron(NamedTuple):
    """A weight vector ``w`` (the bias last) with the methods every 2-D classifier's loader gives."""

    weights: np.ndarray

    def predict(self, X: np.ndarray) -> np.ndarray:
        return predict(self.weights, X)

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        return criterion(self.weights, X, y)


class Training(NamedTuple):
    model: Perceptron
    result: TrainResult   # one history row per epoch; a perceptron never diverges
    converged: bool       # stopped at an epoch with no misclassified training point


def check_labels(y: np.ndarray, where: str) -> None:
    unexpected = set(np.unique(y).tolist()) - set(LABELS)
    if unexpected:
        raise DataError(f"{where}: perceptron labels must be +1/-1, found {sorted(unexpected)}")


def train(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, *,
          lr: float, max_epochs: int) -> Training:
    """Batch perceptron from ``w = 0``; one history row (losses, accuracies) per epoch."""
    Xb = with_bias(X_train)
    w = np.zeros(Xb.shape[1])
    result = TrainResult("epoch")
    for epoch in range(1, max_epochs + 1):
        misclassified = y_train * (Xb @ w) <= 0
        gradient = -(y_train[misclassified] @ Xb[misclassified]) / len(y_train)
        w = w - lr * gradient
        result.history.append({
            "epoch": epoch,
            "train_loss": criterion(w, X_train, y_train), "train_accuracy": accuracy(w, X_train, y_train),
            "test_loss": criterion(w, X_test, y_test), "test_accuracy": accuracy(w, X_test, y_test),
        })
        result.trained = epoch
        if not np.any(y_train * (Xb @ w) <= 0):
            return Training(Perceptron(w), result, converged=True)
    return Training(Perceptron(w), result, converged=False)


def save_model(directory: Path, training: Training, **spec) -> None:
    """The weights and what rebuilds the model; ``spec`` adds the params that shaped it and the
    data source (see :mod:`nnlab.artifacts`)."""
    artifacts.save_arrays(directory, {"weights": training.model.weights})
    artifacts.write_spec(directory, KIND, classes=list(LABELS), converged=training.converged,
                         run=training.result.run_record(), **spec)


def load_model(directory: str | Path, stage: str) -> tuple[Perceptron, dict]:
    """The perceptron saved by :func:`save_model` and its spec."""
    spec = artifacts.read_spec(directory, KIND, stage)
    weights = artifacts.load_arrays(directory).get("weights")
    if weights is None or weights.ndim != 1:
        raise DataError(f"{directory}: no weight vector in {artifacts.NUMPY_WEIGHTS}")
    return Perceptron(weights), spec
