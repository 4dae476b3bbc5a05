"""The linear MNIST classifier of report 003, by hand (numpy) and in PyTorch.

Model: scores ``W x`` with ``W`` 10x784 starting at zero; loss the mean over
samples of ``0.5 * ||W x - y||^2`` for a one-hot ``y``; gradient on a batch of
``B`` samples ``(W x - y) x^T / B``; mini-batches drawn with replacement.

Evaluation is the costly part when it runs every iteration (the report scored
all 70k images in float64 at every step): :class:`Scorer` scores many weight
matrices in one pass over the float32 pixels, and gets loss and accuracy from
the same 10 scores per image. How often it runs is ``eval_every``.

Both trainers draw their batches with :func:`draw_batch` from a numpy
generator, so with one seed they see the same batches and their weight
trajectories can be compared step by step.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits
from nnlab.cli import FAST_LOOP_LINE_EVERY_S, Progress

from nnlab.datasets.mnist import N_CLASSES, N_PIXELS, NormalizedMnist
from nnlab import artifacts
from nnlab.results import classifier_scores, diverged_scores, model_evaluation


def draw_batch(rng: np.random.Generator, n_samples: int, batch_size: int) -> np.ndarray:
    """Indices of one mini-batch, drawn with replacement (as the report did)."""
    return rng.integers(0, n_samples, size=batch_size)


def loss_and_gradient(W: np.ndarray, X: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean of ``0.5 * ||W x - y||^2`` over the rows of ``X`` and its gradient ``(W x - y) x^T / B``."""
    residual = X @ W.T - Y
    loss = 0.5 * float(np.einsum("ij,ij->", residual, residual)) / len(X)
    return loss, residual.T @ X / len(X)


SNAPSHOTS_PER_PASS = 32  # weight matrices scored per read of the pixels
CHUNK_ROWS = 4096        # rows scored at a time: their scores stay in cache for the loss and argmax
SCORING_THREADS = 2      # scoring reads the whole set: worth both cores of a laptop


class Scorer:
    """Loss and accuracy of several weight matrices on one data set, reading the pixels once for all.

    With only 10 rows, ``W`` gives a matrix product too thin to run near the
    machine's matmul rate (it was 5x slower than reading the pixels). Stacking
    :data:`SNAPSHOTS_PER_PASS` matrices makes it 320 wide: one pass over the
    float32 pixels then scores all of them, and each chunk of
    :data:`CHUNK_ROWS` rows has its loss and argmax taken while its scores are
    still in cache. The chunks are fixed and their sums added in order, so the
    metrics do not depend on how many threads ran them.
    """

    def __init__(self, X: np.ndarray, labels: np.ndarray):
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.intp)
        n = len(self.labels)
        self._chunks = [slice(start, min(start + CHUNK_ROWS, n)) for start in range(0, n, CHUNK_ROWS)]

    def __call__(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(losses, accuracies)`` of a stack of weight matrices (k x 10 x 784), one value each.

        A loss is inf or NaN once its matrix has overflowed.
        """
        k = len(weights)
        stacked = np.ascontiguousarray(np.reshape(weights, (k * N_CLASSES, -1)).T, dtype=np.float32)
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(SCORING_THREADS) as pool:
            parts = list(pool.map(lambda rows: self._score_chunk(rows, stacked, k), self._chunks))
        loss_sums = np.sum([loss for loss, _ in parts], axis=0)
        correct = np.sum([hits for _, hits in parts], axis=0)
        n = len(self.labels)
        return 0.5 * loss_sums / n, correct / n

    def _score_chunk(self, rows: slice, stacked: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Summed squared error (float64) and correct count of each matrix on ``rows``."""
        labels = self.labels[rows]
        scores = (self.X[rows] @ stacked).reshape(len(labels), k, N_CLASSES)
        with np.errstate(over="ignore", invalid="ignore"):
            correct = np.count_nonzero(scores.argmax(axis=2) == labels[:, None], axis=0)
            # With a one-hot y, W x - y is the scores with 1 taken off the true class.
            scores[np.arange(len(labels)), :, labels] -= 1
            squared = np.einsum("nkc,nkc->nk", scores, scores).sum(axis=0, dtype=np.float64)
        return squared, correct


@dataclass
class TrainResult:
    """The weights reached and the scores recorded every ``eval_every`` steps."""
    history: list[dict]
    steps: int
    diverged_at: int | None = None
    weights: dict = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def summary(self) -> dict:
        """Final and best scores in the nested metrics shape; nulls when the run diverged."""
        last = self.history[-1] if self.history and not self.diverged else {}
        summary = {}
        for split in ("train", "test"):
            accuracies = [row[f"{split}_accuracy"] for row in self.history]
            summary[split] = {
                "loss": last.get(f"{split}_loss"),
                "accuracy": last.get(f"{split}_accuracy"),
                "best_accuracy": max(accuracies) if accuracies else None,
            }
        summary.update(diverged=self.diverged, diverged_at_step=self.diverged_at, steps=self.steps)
        return summary

    def run_record(self) -> dict:
        """How the run ended, in the terms of :class:`nnlab.results.TrainResult`."""
        return {"diverged": self.diverged, "diverged_at": self.diverged_at, "trained": self.steps, "unit": "step"}


def _eval_steps(iterations: int, eval_every: int) -> set[int]:
    return set(range(eval_every, iterations + 1, eval_every)) | {iterations}


def _steps(iterations: int, desc: str | None, history: list[dict]):
    """Steps 1 to ``iterations``, with progress: each row added to ``history`` is reported."""
    with Progress(iterations, desc, line_every_s=FAST_LOOP_LINE_EVERY_S) as progress:
        for step in range(1, iterations + 1):
            yield step
            progress.update()
            if history and history[-1]["step"] == step:
                progress.report(f"step {step}/{iterations}", **{k: v for k, v in history[-1].items() if k != "step"})


def train_numpy(data: NormalizedMnist, *, lr: float, batch_size: int, iterations: int, eval_every: int,
                rng: np.random.Generator, desc: str | None = None,
                on_step: Callable[[int, np.ndarray], None] | None = None,
                scorers: tuple[Scorer, Scorer] | None = None) -> TrainResult:
    """SGD on the hand-written model; stops at the first non-finite loss (batch or evaluated).

    The weights due for evaluation are kept and scored :data:`SNAPSHOTS_PER_PASS`
    at a time (see :class:`Scorer`); the history, the step a run stops at and
    the weights it returns are the same as if each had been scored at once.
    Only ``on_step(step, W)``, which sees the weights after every update (the
    benchmark compares trajectories with it) and must not modify them, may see
    a few steps past an evaluation that diverged.
    ``scorers`` lets runs on the same data share their (train, test) scorers.
    """
    W = np.zeros((N_CLASSES, N_PIXELS))
    score_train, score_test = scorers or scorers_for(data)
    evaluate_at = _eval_steps(iterations, eval_every)
    history: list[dict] = []
    pending: list[tuple[int, np.ndarray]] = []   # (step, weights) due for evaluation, not yet scored

    def score_pending() -> TrainResult | None:
        """Scores the pending weights into ``history``; the result to return if one of them diverged."""
        if not pending:
            return None
        weights = np.stack([snapshot for _, snapshot in pending])
        (train_losses, train_accuracies), (test_losses, test_accuracies) = score_train(weights), score_test(weights)
        for i, (step, snapshot) in enumerate(pending):
            if not (np.isfinite(train_losses[i]) and np.isfinite(test_losses[i])):
                return TrainResult(history, step, diverged_at=step, weights={"W": snapshot})
            history.append({"step": step, "train_loss": float(train_losses[i]),
                            "train_accuracy": float(train_accuracies[i]),
                            "test_loss": float(test_losses[i]), "test_accuracy": float(test_accuracies[i])})
        pending.clear()
        return None

    # The batch products run in float32 like the pixels (no upcast copy of the batch); W accumulates in float64.
    W32 = np.empty(W.shape, dtype=np.float32)
    # One BLAS thread for the batch products: too small to share; on a busy 2-core machine a second
    # thread made batch-1000 runs 8x slower. Scoring sets its own count (Scorer).
    with threadpool_limits(limits=1, user_api="blas"), np.errstate(over="ignore", invalid="ignore"):
        for step in _steps(iterations, desc, history):
            batch = draw_batch(rng, len(data.labels_train), batch_size)
            np.copyto(W32, W, casting="same_kind")
            batch_loss, gradient = loss_and_gradient(W32, data.X_train[batch], data.Y_train[batch])
            if not np.isfinite(batch_loss):
                return score_pending() or TrainResult(history, step - 1, diverged_at=step, weights={"W": W})
            W -= lr * gradient
            if on_step is not None:
                on_step(step, W)
            if step in evaluate_at:
                pending.append((step, W.copy()))
                if len(pending) == SNAPSHOTS_PER_PASS or step == iterations:
                    diverged = score_pending()
                    if diverged:
                        return diverged
    return TrainResult(history, iterations, weights={"W": W})


def train_torch(data: NormalizedMnist, *, lr: float, batch_size: int, iterations: int, eval_every: int,
                rng: np.random.Generator, device, bias: bool = True, desc: str | None = None) -> TrainResult:
    """The same model as ``nn.Linear(784, 10)`` (zeroed) with ``MSELoss`` and SGD.

    The loss is ``MSELoss(reduction="sum") / (2 B)``: exactly the hand-written
    loss, so one learning rate means the same step in both (the default
    ``reduction="mean"`` would also divide by the 10 outputs).
    """
    import torch
    from torch import nn

    model = nn.Linear(N_PIXELS, N_CLASSES, bias=bias).to(device)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    criterion = nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    tensors = {name: torch.from_numpy(array).to(device) for name, array in
               (("X_train", data.X_train), ("Y_train", data.Y_train), ("X_test", data.X_test),
                ("Y_test", data.Y_test))}
    labels = {"train": torch.from_numpy(data.labels_train).to(device),
              "test": torch.from_numpy(data.labels_test).to(device)}

    def evaluate(split: str) -> tuple[float, float]:
        scores = model(tensors[f"X_{split}"])
        loss = criterion(scores, tensors[f"Y_{split}"]).item() / (2 * len(scores))
        accuracy = (scores.argmax(dim=1) == labels[split]).double().mean().item()
        return loss, accuracy

    def weights() -> dict:
        return {name: p.detach().cpu().numpy().astype(np.float64) for name, p in model.named_parameters()}

    evaluate_at = _eval_steps(iterations, eval_every)
    history: list[dict] = []
    for step in _steps(iterations, desc, history):
        batch = torch.from_numpy(draw_batch(rng, len(data.labels_train), batch_size)).to(device)
        loss = criterion(model(tensors["X_train"][batch]), tensors["Y_train"][batch]) / (2 * batch_size)
        if not torch.isfinite(loss):
            return TrainResult(history, step - 1, diverged_at=step, weights=weights())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in evaluate_at:
            with torch.no_grad():
                (train_loss, train_accuracy), (test_loss, test_accuracy) = evaluate("train"), evaluate("test")
            if not (np.isfinite(train_loss) and np.isfinite(test_loss)):
                return TrainResult(history, step, diverged_at=step, weights=weights())
            history.append({"step": step, "train_loss": train_loss, "train_accuracy": train_accuracy,
                            "test_loss": test_loss, "test_accuracy": test_accuracy})
    return TrainResult(history, iterations, weights=weights())


@dataclass
class StudyRun:
    """One run of a study: its settings, its result and its wall time."""
    settings: dict
    result: TrainResult
    seconds: float

    def table_row(self) -> dict:
        summary = self.result.summary()
        return {**self.settings,
                "final_train_accuracy": summary["train"]["accuracy"],
                "final_test_accuracy": summary["test"]["accuracy"],
                "best_train_accuracy": summary["train"]["best_accuracy"],
                "best_test_accuracy": summary["test"]["best_accuracy"],
                "final_train_loss": summary["train"]["loss"],
                "diverged": summary["diverged"], "diverged_at_step": summary["diverged_at_step"],
                "seconds": round(self.seconds, 3)}

    def progress_figures(self) -> dict:
        row = self.table_row()
        return {"final_train_loss": row["final_train_loss"], "final_test_accuracy": row["final_test_accuracy"],
                "diverged": row["diverged"]}

    def history_rows(self) -> list[dict]:
        return [{**self.settings, **row} for row in self.result.history]


def scorers_for(data: NormalizedMnist) -> tuple[Scorer, Scorer]:
    """Train and test scorers; runs on the same data share them."""
    return Scorer(data.X_train, data.labels_train), Scorer(data.X_test, data.labels_test)


def timed_numpy_run(settings: dict, data: NormalizedMnist, seed: int, **train_kwargs) -> StudyRun:
    """A :func:`train_numpy` run with its own generator seeded with ``seed``, timed."""
    start = time.perf_counter()
    result = train_numpy(data, rng=np.random.default_rng(seed), **train_kwargs)
    return StudyRun(settings, result, time.perf_counter() - start)


def lr_batch_grid(data: NormalizedMnist, *, lrs: list[float], batch_sizes: list[int], iterations: int,
                  eval_every: int, seed: int) -> list[StudyRun]:
    """Every (lr, batch size) pair, each from zero weights and the same seed."""
    pairs = [(lr, batch) for lr in lrs for batch in batch_sizes]
    scorers = scorers_for(data)
    runs = []
    with Progress(len(pairs), "lr x batch grid", unit="run", lines_on_terminal=True) as progress:
        for lr, batch in pairs:
            runs.append(timed_numpy_run({"lr": lr, "batch_size": batch}, data, seed, lr=lr, batch_size=batch,
                                        iterations=iterations, eval_every=eval_every, scorers=scorers))
            progress.update()
            progress.report(f"lr={lr:g} batch={batch}", **runs[-1].progress_figures())
    return runs


def best_lr_per_batch(runs: list[StudyRun], metric: str = "best_test_accuracy") -> list[dict]:
    """For each batch size, the lr whose run scored highest on ``metric`` (diverged runs never win)."""
    best: dict[int, dict] = {}
    for row in (run.table_row() for run in runs):
        score = row[metric]
        if score is None:
            continue
        current = best.get(row["batch_size"])
        if current is None or score > current[metric]:
            best[row["batch_size"]] = {"batch_size": row["batch_size"], "best_lr": row["lr"], metric: score}
    return [best[b] for b in sorted(best)]


def subset(data: NormalizedMnist, size: int, rng: np.random.Generator) -> NormalizedMnist:
    """``size`` training samples drawn without replacement; the test set is kept whole."""
    chosen = np.sort(rng.choice(len(data.labels_train), size=size, replace=False))
    return NormalizedMnist(data.X_train[chosen], data.Y_train[chosen], data.labels_train[chosen],
                           data.X_test, data.Y_test, data.labels_test)


def train_size_study(data: NormalizedMnist, *, sizes: list[int], lr: float, batch_size: int,
                     iterations: int, eval_every: int, seed: int) -> list[StudyRun]:
    """One run per training-set size N'; sizes above the training set are clamped to it (and say so)."""
    available = len(data.labels_train)
    score_test = Scorer(data.X_test, data.labels_test)
    runs = []
    progress = Progress(len(sizes), "training-set sizes", unit="run", lines_on_terminal=True)
    for requested in sizes:
        part = subset(data, min(requested, available), np.random.default_rng(seed))
        scorers = (Scorer(part.X_train, part.labels_train), score_test)
        used = len(part.labels_train)   # counted from the rows trained on, not from the size asked for
        runs.append(timed_numpy_run({"requested_size": requested, "used_size": used,
                                     "clamped": used < requested}, part, seed, lr=lr, batch_size=batch_size,
                                    iterations=iterations, eval_every=eval_every, scorers=scorers))
        progress.update()
        progress.report(f"size {used}", **runs[-1].progress_figures())
    progress.close()
    return runs



CLASSES = [str(digit) for digit in range(N_CLASSES)]
KINDS = {"numpy": "mnist_linear_numpy", "torch": "mnist_linear_torch"}


@dataclass
class LinearModel:
    """A trained linear classifier, either implementation: scores ``x W^T + b``."""

    W: np.ndarray
    b: np.ndarray | None = None

    def scores(self, X: np.ndarray) -> np.ndarray:
        scores = np.asarray(X, dtype=np.float64) @ self.W.T
        return scores if self.b is None else scores + self.b

    def split_scores(self, X: np.ndarray, Y: np.ndarray, labels: np.ndarray, *, train: bool) -> dict:
        """The split's scores in the metrics schema; the loss is the training loss, mean 0.5 ||Wx - y||^2."""
        scores = self.scores(X)
        loss = 0.5 * float(np.sum((scores - Y) ** 2)) / len(X)
        return classifier_scores(labels, scores.argmax(axis=1), CLASSES, loss, train=train)


def save_model(directory, result: TrainResult, implementation: str, *, settings: dict, source: str) -> None:
    """The final weights (``weights.npz`` by hand, a ``state_dict`` for PyTorch) and what rebuilds the model."""
    import torch

    weights = result.weights
    if implementation == "numpy":
        artifacts.save_arrays(directory, weights)
    else:
        artifacts.save_state_dict(directory, _torch_linear({k: torch.from_numpy(v.astype(np.float32))
                                                            for k, v in weights.items()}))
    artifacts.write_spec(directory, KINDS[implementation], classes=CLASSES, n_pixels=N_PIXELS, source=source,
                         bias="bias" in weights, settings=settings, run=result.run_record())


def _torch_linear(state: dict):
    from torch import nn

    model = nn.Linear(N_PIXELS, N_CLASSES, bias="bias" in state)
    model.load_state_dict(state)
    return model


def load_numpy_model(directory, stage: str = "mnist_linear") -> tuple[LinearModel, dict]:
    spec = artifacts.read_spec(directory, KINDS["numpy"], stage)
    return LinearModel(artifacts.load_arrays(directory)["W"]), spec


def load_torch_model(directory, stage: str = "mnist_torch") -> tuple[LinearModel, dict]:
    from torch import nn

    spec = artifacts.read_spec(directory, KINDS["torch"], stage)
    model = artifacts.load_state_dict(directory, nn.Linear(N_PIXELS, N_CLASSES, bias=spec["bias"]))
    bias = model.bias.detach().double().numpy() if model.bias is not None else None
    return LinearModel(model.weight.detach().double().numpy(), bias), spec


def model_record(model: LinearModel, spec: dict, data: NormalizedMnist) -> dict:
    """The model's evaluation record (see :mod:`nnlab.results`)."""
    if spec["run"]["diverged"]:
        return model_evaluation(spec["source"], spec["run"], diverged_scores(CLASSES, train=True),
                                diverged_scores(CLASSES))
    return model_evaluation(spec["source"], spec["run"],
                            model.split_scores(data.X_train, data.Y_train, data.labels_train, train=True),
                            model.split_scores(data.X_test, data.Y_test, data.labels_test, train=False))
