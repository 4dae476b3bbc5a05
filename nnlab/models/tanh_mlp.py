"""The tanh MLP of report 004 with forward and backward passes written by hand.

Network: ``h = tanh(X Wh^T + bh)``, ``yhat = softmax(h Wy^T + by)``, trained
on the cross-entropy with plain mini-batch SGD. Everything runs on torch
tensors without autograd: the gradients come from :func:`backward`
(``delta_y = yhat - Y``, ``delta_h = delta_y Wy * (1 - h^2)``, averaged over
the batch), and the tests check them against autograd.

Every function also takes parameters with a leading *run* dimension (``Wh`` of
shape ``(R, nh, nx)``, ``bh`` of shape ``(R, 1, nh)``...): :func:`train_runs`
uses it to train the same initial network at several learning rates at once,
on the same shuffled batches, which is R independent runs for the price of
one loop (tiny tensors are dominated by per-operation overhead, not flops).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from nnlab.cli import FAST_LOOP_LINE_EVERY_S, Progress

from nnlab import artifacts
from nnlab.datasets.synthetic import one_hot
from nnlab.errors import DataError
from nnlab.results import SCORE_COLUMNS, TrainResult

KIND = "tanh_mlp"
PARAM_NAMES = ("Wh", "bh", "Wy", "by")
Params = dict[str, torch.Tensor]


def init_params(nx: int, nh: int, ny: int, *, std: float = 0.3, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32) -> Params:
    """Weights and biases drawn from N(0, std^2).

    The report wrote ``torch.randn(...) / math.sqrt(0.3)``, i.e. a standard
    deviation of 1.83 instead of the 0.3 its own text asks for; we use 0.3.
    """
    return {name: torch.randn(shape, generator=generator, dtype=dtype) * std
            for name, shape in param_shapes(nx, nh, ny).items()}


def param_shapes(nx: int, nh: int, ny: int) -> dict[str, tuple[int, int]]:
    return {"Wh": (nh, nx), "bh": (1, nh), "Wy": (ny, nh), "by": (1, ny)}


def forward(params: Params, X: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(yhat, outputs)`` with the intermediates ``X, htilde, h, ytilde, yhat`` that backward needs."""
    htilde = X @ params["Wh"].mT + params["bh"]
    h = torch.tanh(htilde)
    ytilde = h @ params["Wy"].mT + params["by"]
    yhat = torch.softmax(ytilde, dim=-1)
    return yhat, {"X": X, "htilde": htilde, "h": h, "ytilde": ytilde, "yhat": yhat}


def loss_accuracy(Yhat: torch.Tensor, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and the fraction of rows whose largest output is the true class.

    ``xlogy`` makes ``0 * log 0`` zero, so only a true class with probability 0
    gives an infinite loss.
    """
    loss = -torch.xlogy(Y, Yhat).sum(dim=-1).mean(dim=-1)
    accuracy = (Yhat.argmax(dim=-1) == Y.argmax(dim=-1)).to(Yhat.dtype).mean(dim=-1)
    return loss, accuracy


def backward(params: Params, outputs: dict[str, torch.Tensor], Y: torch.Tensor) -> Params:
    """Gradients of the batch-mean cross-entropy with respect to every parameter."""
    batch = Y.shape[-2]
    delta_y = outputs["yhat"] - Y
    delta_h = (delta_y @ params["Wy"]) * (1 - outputs["h"] ** 2)
    return {
        "Wh": delta_h.mT @ outputs["X"] / batch, "bh": delta_h.mean(dim=-2, keepdim=True),
        "Wy": delta_y.mT @ outputs["h"] / batch, "by": delta_y.mean(dim=-2, keepdim=True),
    }


def sgd(params: Params, grads: Params, eta: float | torch.Tensor) -> Params:
    """One SGD step in place (``eta`` may hold one rate per run, shaped ``(R, 1, 1)``)."""
    for name, grad in grads.items():
        params[name] -= eta * grad
    return params


@dataclass(frozen=True)
class InputScaling:
    """Each input shifted by ``mean`` and divided by ``scale`` (both fitted on the training
    points), or left as it is when they are None."""
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    @classmethod
    def fit(cls, X_train: np.ndarray) -> "InputScaling":
        """Zero mean and unit variance on ``X_train`` (scikit-learn's statistics, whose exact
        bits the trained runs were tuned on)."""
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(X_train)
        return cls(scaler.mean_, scaler.scale_)

    def __call__(self, points: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Raw 2-D points as network inputs; the same arithmetic as ``StandardScaler.transform``."""
        points = np.asarray(points, dtype=np.float64)
        return tensor(points if self.mean is None else (points - self.mean) / self.scale, dtype)


@dataclass
class CirclesData:
    """Inputs and one-hot targets as tensors, with the input scaling fitted on the training points."""
    X_train: torch.Tensor
    Y_train: torch.Tensor
    X_test: torch.Tensor
    Y_test: torch.Tensor
    scaling: InputScaling = InputScaling()

    @classmethod
    def from_split(cls, split, *, standardize: bool, dtype: torch.dtype = torch.float32) -> "CirclesData":
        """``standardize`` rescales each input to zero mean and unit variance on the training set.

        An N(0, 0.3^2) network on raw circles of radius 1 starts almost linear
        (pre-activations ~0.3) and can sit on the loss plateau for most of 150
        epochs; unit-scale inputs leave it sooner.
        """
        n_classes = int(max(split.y_train.max(), split.y_test.max())) + 1
        scaling = InputScaling.fit(split.X_train) if standardize else InputScaling()
        return cls(scaling(split.X_train, dtype), tensor(one_hot(split.y_train, n_classes), dtype),
                   scaling(split.X_test, dtype), tensor(one_hot(split.y_test, n_classes), dtype), scaling)


def tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=dtype)


@dataclass
class RunResult(TrainResult):
    """One learning rate's run of :func:`train_runs`: its history per epoch and its final parameters."""
    unit: str = "epoch"
    batch_size: int = 0
    lr: float = math.nan
    params: Params = field(default_factory=dict)
    seconds: float = math.nan

    def table_row(self) -> dict:
        return {"batch_size": self.batch_size, "lr": self.lr, **self.final(),
                "seconds": round(self.seconds, 3), "diverged": self.diverged, "diverged_epoch": self.diverged_at}


def train_runs(data: CirclesData, *, hidden_units: int, batch_size: int, lrs: Sequence[float], epochs: int,
               seed: int, init_std: float = 0.3) -> list[RunResult]:
    """Train one network per learning rate, all from the same initialisation on the same batches.

    The training set is reshuffled every epoch (a ``torch.Generator`` seeded
    with ``seed`` draws the initialisation, then the permutations); the last
    batch of an epoch is smaller when ``batch_size`` does not divide it. After
    every epoch the whole train and test sets are scored; a run whose loss is
    not finite is marked diverged there and recorded no further. ``seconds``
    is each run's share of the wall time of the joint loop.
    """
    generator = torch.Generator().manual_seed(seed)
    n_train, nx = data.X_train.shape
    single = init_params(nx, hidden_units, data.Y_train.shape[1], std=init_std, generator=generator,
                         dtype=data.X_train.dtype)
    params = {name: value.expand(len(lrs), *value.shape).clone() for name, value in single.items()}
    etas = torch.tensor(lrs, dtype=data.X_train.dtype).view(-1, 1, 1)
    runs = [RunResult(batch_size=batch_size, lr=float(lr)) for lr in lrs]
    start = time.perf_counter()
    progress = Progress(epochs, f"batch {batch_size}", unit="epoch", line_every_s=FAST_LOOP_LINE_EVERY_S)
    with single_thread(), torch.no_grad(), progress:
        for epoch in range(1, epochs + 1):
            order = torch.randperm(n_train, generator=generator)
            # Slicing the shuffled copies gives views: cheaper than indexing once per batch.
            for X, Y in zip(data.X_train[order].split(batch_size), data.Y_train[order].split(batch_size)):
                _, outputs = forward(params, X)
                sgd(params, backward(params, outputs, Y), etas)
            for run, row in zip(runs, score(params, data)):
                if run.diverged:
                    continue
                if math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"]):
                    run.history.append({"epoch": epoch, **row})
                    run.trained = epoch
                else:
                    run.diverged_at = epoch
            progress.update()
            progress.report(f"epoch {epoch}/{epochs}", **_progress_figures(runs))
            if all(run.diverged for run in runs):
                break
    share = (time.perf_counter() - start) / len(runs)
    for r, run in enumerate(runs):
        run.params = {name: value[r].clone() for name, value in params.items()}
        run.seconds = share
    return runs


def _progress_figures(runs: list[RunResult]) -> dict:
    """The best of the learning rates trained together, and how many diverged."""
    live = [run.history[-1] for run in runs if not run.diverged]
    return {"best_train_loss": min((row["train_loss"] for row in live), default=None),
            "best_test_accuracy": max((row["test_accuracy"] for row in live), default=None),
            "diverged_runs": sum(run.diverged for run in runs)}


def score(params: Params, data: CirclesData) -> list[dict]:
    """Loss and accuracy on the whole train and test sets, one dict per run.

    Scored in float64, so that 172 right out of 200 reads 0.86, not 0.8600000143.
    """
    params64 = {name: value.double() for name, value in params.items()}
    columns = {}
    for split, X, Y in (("train", data.X_train, data.Y_train), ("test", data.X_test, data.Y_test)):
        loss, accuracy = loss_accuracy(forward(params64, X.double())[0], Y.double())
        columns[f"{split}_loss"], columns[f"{split}_accuracy"] = loss.tolist(), accuracy.tolist()
    return [{key: columns[key][r] for key in SCORE_COLUMNS} for r in range(len(columns["train_loss"]))]


@contextmanager
def single_thread():
    """Run torch on one thread for a while.

    Several threads only add synchronisation to 10-unit tensors (and, on a
    busy machine, wait for each other); one is faster and gives the same
    numbers on any machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class TanhNet:
    """Trained parameters and the input scaling they were trained with, scored exactly as
    :func:`score` scored them in training: in float64, on the float32 inputs, as a run
    dimension of one (a batched product can round differently from a plain one)."""
    params: Params
    scaling: InputScaling

    def run_probabilities(self, points: np.ndarray) -> torch.Tensor:
        """Class probabilities of shape ``(1, n, classes)``."""
        params64 = {name: value.double().unsqueeze(0) for name, value in self.params.items()}
        with torch.no_grad():
            return forward(params64, self.scaling(points, self.params["Wh"].dtype).double())[0]

    def class1_probability(self, points: np.ndarray) -> np.ndarray:
        return self.run_probabilities(points)[0, :, 1].numpy()

    def predict(self, points: np.ndarray) -> np.ndarray:
        return self.run_probabilities(points)[0].argmax(dim=1).numpy()

    def loss(self, points: np.ndarray, y: np.ndarray) -> float:
        yhat = self.run_probabilities(points)
        return float(loss_accuracy(yhat, torch.from_numpy(one_hot(y, yhat.shape[-1])))[0][0])


def save_model(directory: Path, net: TanhNet, result: TrainResult, **spec) -> None:
    """The parameters (as numpy arrays) with the input scaling, and what rebuilds the net;
    ``spec`` adds the classes, the params that shaped it and the data source."""
    arrays = {name: value.numpy() for name, value in net.params.items()}
    if net.scaling.mean is not None:
        arrays |= {"input_mean": net.scaling.mean, "input_scale": net.scaling.scale}
    n_hidden, n_inputs = net.params["Wh"].shape
    artifacts.save_arrays(directory, arrays)
    artifacts.write_spec(directory, KIND, n_inputs=n_inputs, hidden_units=n_hidden,
                         n_classes=net.params["Wy"].shape[0], standardize=net.scaling.mean is not None,
                         run=result.run_record(), **spec)


def load_model(directory: str | Path, stage: str) -> tuple[TanhNet, dict]:
    """The net saved by :func:`save_model` and its spec."""
    spec = artifacts.read_spec(directory, KIND, stage)
    arrays = artifacts.load_arrays(directory)
    shapes = param_shapes(spec["n_inputs"], spec["hidden_units"], spec["n_classes"])
    scaling_names = ("input_mean", "input_scale") if spec["standardize"] else ()
    if arrays.keys() != {*PARAM_NAMES, *scaling_names} or any(arrays[n].shape != s for n, s in shapes.items()):
        raise DataError(f"{directory}: weights that do not fit the net in {artifacts.SPEC}")
    scaling = InputScaling(*(arrays[name] for name in scaling_names))
    return TanhNet({name: torch.from_numpy(arrays[name]) for name in PARAM_NAMES}, scaling), spec
