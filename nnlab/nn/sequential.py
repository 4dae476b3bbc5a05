"""``Sequential``: a stack of layers trained with plain SGD on full batches, mini-batches or single samples."""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
from nnlab.cli import FAST_LOOP_LINE_EVERY_S, Progress

from nnlab.nn.layers import Layer
from nnlab.nn.losses import Loss
from nnlab.results import SCORE_COLUMNS, TrainResult

HISTORY_COLUMNS = ("step", "epoch", *SCORE_COLUMNS)


def steps_per_epoch(n_samples: int, batch_size: int | None) -> int:
    """Updates per pass over the data (the last batch may be smaller)."""
    return 1 if batch_size is None else math.ceil(n_samples / batch_size)


def _batches(X: np.ndarray, y: np.ndarray, batch_size: int | None,
             rng: np.random.Generator | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An endless stream of batches: the whole set each time, or epochs of shuffled slices.

    Each epoch permutes the data once, so the batches are views, not copies;
    the last batch of an epoch is smaller when the size does not divide n.
    """
    if batch_size is None or batch_size >= len(X):
        while True:
            yield X, y
    while True:
        order = rng.permutation(len(X))
        X_epoch, y_epoch = X[order], y[order]
        for start in range(0, len(X), batch_size):
            yield X_epoch[start:start + batch_size], y_epoch[start:start + batch_size]


class Sequential:
    def __init__(self, layers: Sequence[Layer]):
        self.layers = list(layers)
        # Layers update their gradient arrays in place, so these pairs stay valid for every step.
        self._updates = [(param, layer.grads()[name])
                         for layer in self.layers for name, param in layer.params().items()]

    def __repr__(self) -> str:
        return " - ".join(map(repr, self.layers))

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """Every layer's gradients; returns the gradient with respect to the input."""
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def backward_params(self, grad: np.ndarray) -> None:
        """The parameter gradients alone: the first layer skips its input gradient where it can."""
        first, *rest = self.layers
        for layer in reversed(rest):
            grad = layer.backward(grad)
        first.backward_params(grad)

    def step(self, lr: float) -> None:
        """One plain SGD update with the gradients of the last ``backward``."""
        for param, grad in self._updates:
            param -= lr * grad

    def evaluate(self, X: np.ndarray, y: np.ndarray, loss: Loss) -> tuple[float, float]:
        """(loss, accuracy) on a whole set."""
        output = self.forward(X)
        return loss.forward(output, y), loss.accuracy(output, y)

    def train(self, X: np.ndarray, y: np.ndarray, loss: Loss, *, lr: float, steps: int,
              batch_size: int | None = None, eval_every: int = 1, rng: np.random.Generator | None = None,
              X_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
              desc: str | None = None) -> TrainResult:
        """Run ``steps`` SGD updates and score the model before the first and every ``eval_every`` updates.

        ``batch_size`` None (or >= n) is full-batch gradient descent; 1 is one
        sample at a time; anything between is mini-batch SGD over epochs
        shuffled with ``rng``. The run stops at the first non-finite loss; the result's
        ``diverged_at`` is the update at which it showed, and no later scores exist.
        """
        if batch_size is not None and batch_size < len(X) and rng is None:
            raise ValueError("mini-batch training needs a numpy Generator to shuffle with")
        updates_per_epoch = steps_per_epoch(len(X), batch_size)
        history: list[dict] = []

        def record(step: int) -> bool:
            train_loss, train_accuracy = self.evaluate(X, y, loss)
            row = {"step": step, "epoch": step / updates_per_epoch,
                   "train_loss": train_loss, "train_accuracy": train_accuracy,
                   "test_loss": math.nan, "test_accuracy": math.nan}
            if X_test is not None:
                row["test_loss"], row["test_accuracy"] = self.evaluate(X_test, y_test, loss)
            finite = math.isfinite(train_loss) and (X_test is None or math.isfinite(row["test_loss"]))
            if finite:
                history.append(row)
                progress.report(f"step {step}/{steps}", **{k: v for k, v in row.items() if k not in ("step", "epoch")})
            return finite

        progress = Progress(steps, desc or "train", line_every_s=FAST_LOOP_LINE_EVERY_S)
        batches = _batches(X, y, batch_size, rng)
        step = 0
        # Overflow is how a too-large lr shows; it is caught below as a non-finite loss, not warned about.
        with progress, np.errstate(over="ignore", invalid="ignore"):
            diverged_at = None if record(0) else 0
            while diverged_at is None and step < steps:
                X_batch, y_batch = next(batches)
                batch_loss = loss.forward(self.forward(X_batch), y_batch)
                if not math.isfinite(batch_loss):
                    diverged_at = step + 1
                    break
                self.backward_params(loss.backward())
                self.step(lr)
                step += 1
                if step % eval_every == 0 or step == steps:
                    progress.update(step - progress.done)
                    if not record(step):
                        diverged_at = step
        return TrainResult("step", history, trained=step, diverged_at=diverged_at)
