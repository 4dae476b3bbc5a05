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

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

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


@dataclass
class PerceptronResult:
    weights: np.ndarray
    history: list[dict]
    converged_epoch: int | None  # first epoch with no misclassified training point

    @property
    def final(self) -> dict:
        return self.history[-1]


def check_labels(y: np.ndarray, where: str) -> None:
    from nnlab.errors import DataError

    unexpected = set(np.unique(y).tolist()) - set(LABELS)
    if unexpected:
        raise DataError(f"{where}: perceptron labels must be +1/-1, found {sorted(unexpected)}")


def train(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, *,
          lr: float, max_epochs: int) -> PerceptronResult:
    """Batch perceptron from ``w = 0``; one history row (losses, accuracies) per epoch."""
    Xb = with_bias(X_train)
    w = np.zeros(Xb.shape[1])
    history = []
    converged_epoch = None
    for epoch in range(1, max_epochs + 1):
        misclassified = y_train * (Xb @ w) <= 0
        gradient = -(y_train[misclassified] @ Xb[misclassified]) / len(y_train)
        w = w - lr * gradient
        history.append({
            "epoch": epoch,
            "train_loss": criterion(w, X_train, y_train), "train_accuracy": accuracy(w, X_train, y_train),
            "test_loss": criterion(w, X_test, y_test), "test_accuracy": accuracy(w, X_test, y_test),
        })
        if not np.any(y_train * (Xb @ w) <= 0):
            converged_epoch = epoch
            break
    return PerceptronResult(w, history, converged_epoch)


def summary(result: PerceptronResult) -> dict:
    """The nested metrics record of one run."""
    last = result.final
    return {
        "train": {"accuracy": last["train_accuracy"], "loss": last["train_loss"]},
        "test": {"accuracy": last["test_accuracy"], "loss": last["test_loss"]},
        "epochs": last["epoch"],
        "converged": result.converged_epoch is not None,
        "converged_epoch": result.converged_epoch,
        "diverged": False,
    }


def decision_line_figure(w: np.ndarray, splits: dict[str, tuple[np.ndarray, np.ndarray]], *, title: str):
    """The line ``w . [x, 1] = 0`` over the points of each split, one panel per split."""
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4.5), squeeze=False)
    for ax, (split, (X, y)) in zip(axes[0], splits.items()):
        for label, colour in zip(LABELS, ("tab:blue", "tab:red")):
            ax.scatter(*X[y == label].T, s=10, color=colour, label=f"y = {label:+d}")
        x1 = np.array(ax.get_xlim())
        if abs(w[1]) > 1e-12:
            ax.plot(x1, -(w[0] * x1 + w[2]) / w[1], "k-", label="decision line")
        elif abs(w[0]) > 1e-12:
            ax.axvline(-w[2] / w[0], color="k", label="decision line")
        ax.set_ylim(X[:, 1].min() - 1, X[:, 1].max() + 1)
        ax.set(title=f"{title}: {split}", xlabel="x1", ylabel="x2")
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def separation_figure(rows: list[dict]):
    """Test (and train) accuracy against the distance between the means, one line per variance."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for variance in sorted({row["variance"] for row in rows}):
        group = sorted((r for r in rows if r["variance"] == variance), key=lambda r: r["mean_distance"])
        distances = [r["mean_distance"] for r in group]
        line, = ax.plot(distances, [r["test_accuracy"] for r in group], "o-", label=f"test, variance {variance:g}")
        ax.plot(distances, [r["train_accuracy"] for r in group], "x--", color=line.get_color(),
                alpha=0.6, label=f"train, variance {variance:g}")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set(title="Perceptron accuracy against separation of the clouds",
           xlabel="distance between the means", ylabel="accuracy", ylim=(0, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
