"""The report 000 §3 sentiment classifier: three fully connected layers on TF-IDF.

``input -> hidden[0] -> hidden[1] -> 1``, the hidden activation a choice
(relu, sigmoid, tanh, leaky_relu), a sigmoid output, binary cross-entropy,
plain SGD over shuffled mini-batches (the report's), or Adam, either with
weight decay. The TF-IDF matrices stay sparse all the way into the first
layer (:class:`SparseLinear`), which reads only the weights of the features a
mini-batch uses, and under plain SGD updates only those.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler
from nnlab.cli import Progress

from nnlab import artifacts
from nnlab.datasets.imdb import SENTIMENTS as CLASSES
from nnlab.results import TrainResult, classifier_scores, diverged_scores, model_evaluation

KIND = "imdb_sentiment"
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}
INITS = ("default", "zeros")
OPTIMIZERS = ("sgd", "adam")
PREDICT_BATCH_SIZE = 4096   # rows scored at once


@dataclass(frozen=True)
class ClassifierConfig:
    hidden_units: tuple[int, int] = (64, 32)
    activation: str = "relu"
    init: str = "default"      # default: PyTorch's; zeros: every weight and bias 0
    lr: float = 0.01
    optimizer: str = "sgd"     # sgd: plain SGD, the report's; adam: torch's Adam
    weight_decay: float = 0.0  # L2 penalty on every weight and bias, as torch's optimizers apply it
    batch_size: int = 16
    epochs: int = 10
    log_every: int = 2000      # mini-batches between running-loss lines (the report's 2000)


class SparseBatch(NamedTuple):
    """Rows of a sparse matrix in ``F.embedding_bag``'s form: the column and value of every stored
    entry, row after row, and the position where each row's entries start."""

    columns: torch.Tensor   # int64
    values: torch.Tensor    # float32
    offsets: torch.Tensor   # int64, one per row

    def to(self, device) -> "SparseBatch":
        return SparseBatch(*(part.to(device) for part in self))


class SparseLinear(nn.Module):
    """``nn.Linear`` on :class:`SparseBatch` rows: the same function and gradient, far less work.

    A cleaned review's TF-IDF row sets about 77 of its 5000 features (aclImdb;
    32 in the synthetic reviews), so a dense product spends almost all its
    time multiplying zeros, and its gradient makes SGD rewrite every weight at
    every step. Here the weight is kept one row per input feature,
    ``(in_features, out_features)`` (the transpose of ``nn.Linear.weight``): a
    batch sums the rows of the features it uses, scaled by their values
    (``F.embedding_bag``), and its gradient is sparse, so plain SGD updates
    only those rows. Adam and weight decay change every weight at every step,
    so they need the dense gradient: ``sparse_gradient=False`` (the forward
    pass stays sparse).
    """

    def __init__(self, in_features: int, out_features: int, *, sparse_gradient: bool = True):
        super().__init__()
        self.sparse_gradient = sparse_gradient
        dense = nn.Linear(in_features, out_features)   # PyTorch's initialisation, in nn.Linear's draw order
        self.weight = nn.Parameter(dense.weight.detach().t().contiguous())
        self.bias = dense.bias

    def forward(self, x: SparseBatch) -> torch.Tensor:
        return F.embedding_bag(x.columns, self.weight, x.offsets, mode="sum", per_sample_weights=x.values,
                               sparse=self.sparse_gradient) + self.bias


class SentimentNet(nn.Module):
    """``input -> hidden[0] -> hidden[1] -> 1`` on :class:`SparseBatch` rows; outputs P(positive)."""

    def __init__(self, n_features: int, hidden_units, activation: str, init: str, *, sparse_gradient: bool = True):
        super().__init__()
        first, second = hidden_units
        self.layers = nn.Sequential(
            SparseLinear(n_features, first, sparse_gradient=sparse_gradient), ACTIVATIONS[activation](),
            nn.Linear(first, second), ACTIVATIONS[activation](),
            nn.Linear(second, 1), nn.Sigmoid(),
        )
        if init == "zeros":
            for parameter in self.parameters():
                nn.init.zeros_(parameter)

    def forward(self, x: SparseBatch) -> torch.Tensor:
        return self.layers(x).squeeze(1)

    def linear_parameters(self) -> list[torch.Tensor]:
        """Every weight and bias in ``nn.Linear``'s layout (the first weight transposed back),
        in order: to compare with, or load into, a dense three-layer net."""
        return [p.t() if isinstance(layer, SparseLinear) and p is layer.weight else p
                for layer in self.layers for p in layer.parameters(recurse=False)]


class SparseRows(Dataset):
    """Rows of a CSR matrix, indexed by a whole batch of row numbers at once."""

    def __init__(self, X: sp.csr_matrix, y: np.ndarray):
        # converted once, not per batch: embedding_bag wants int64 columns and offsets, float32 values
        self.row_starts = X.indptr.astype(np.int64, copy=False)
        self.columns = X.indices.astype(np.int64, copy=False)
        self.values = X.data.astype(np.float32, copy=False)
        self.y = np.asarray(y, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, rows) -> tuple[SparseBatch, torch.Tensor]:
        """The rows' stored entries, cut straight from the CSR arrays (duplicates are summed by the layer)."""
        rows = np.asarray(rows)
        starts = self.row_starts[rows]
        lengths = self.row_starts[rows + 1] - starts
        offsets = np.cumsum(lengths) - lengths
        # positions in the CSR arrays of every stored entry of the chosen rows, row by row
        entries = np.arange(lengths.sum()) + np.repeat(starts - offsets, lengths)
        batch = SparseBatch(torch.from_numpy(self.columns[entries]), torch.from_numpy(self.values[entries]),
                            torch.from_numpy(offsets))
        return batch, torch.from_numpy(self.y[rows])


def batches(X: sp.csr_matrix, y: np.ndarray, batch_size: int, *, shuffle: bool,
            generator: torch.Generator | None = None) -> DataLoader:
    dataset = SparseRows(X, y)
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    # batch_size=None: the sampler hands whole batches of indices to the dataset
    return DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None)


class Training(NamedTuple):
    model: SentimentNet
    result: TrainResult            # one history row per epoch
    running_loss: list[dict]       # one row per ``log_every`` mini-batches, as the report printed


@torch.no_grad()
def predict_proba(model: nn.Module, X: sp.csr_matrix, device, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
    model.eval()
    out = [model(xb.to(device)).cpu() for xb, _ in batches(X, np.zeros(X.shape[0]), batch_size, shuffle=False)]
    return torch.cat(out).numpy()


def bce(probabilities: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def loss_and_accuracy(model: nn.Module, X: sp.csr_matrix, y: np.ndarray, device) -> tuple[float, float]:
    probabilities = predict_proba(model, X, device)
    return bce(probabilities, y), float(np.mean((probabilities >= 0.5) == y))


def sparse_gradient_fits(config: ClassifierConfig) -> bool:
    """Whether ``config``'s optimizer can take the first layer's sparse gradient: plain SGD alone."""
    return config.optimizer == "sgd" and config.weight_decay == 0


def make_optimizer(model: nn.Module, config: ClassifierConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r} (one of {', '.join(OPTIMIZERS)})")


def train_classifier(X_train: sp.csr_matrix, y_train: np.ndarray, X_test: sp.csr_matrix,
                     y_test: np.ndarray, config: ClassifierConfig, *, seed: int, device,
                     desc: str = "imdb_train", log=print, threads: int = 1, checkpoint=None) -> Training:
    """``config.optimizer`` on BCE, scoring both splits after every epoch; stops at the first non-finite loss
    and marks the run diverged at that epoch.

    ``threads``: torch's thread count (stages pass ``train.threads``, see
    :func:`nnlab.params.train_settings`). One by default: batches of 16 sparse
    rows are too little work to share, and one thread makes the numbers
    independent of the machine's core count.

    ``checkpoint``: a :class:`nnlab.checkpoint.Checkpoint` to save the run to after
    every epoch and to resume it from; the result is the same either way.
    """
    from nnlab.runtime import seed_torch

    seed_torch(seed)
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(seed)
    model = SentimentNet(X_train.shape[1], config.hidden_units, config.activation, config.init,
                         sparse_gradient=sparse_gradient_fits(config)).to(device)
    optimizer = make_optimizer(model, config)
    loss_fn = nn.BCELoss()
    result, running_loss = TrainResult(unit="epoch"), []
    loader = batches(X_train, y_train, config.batch_size, shuffle=True, generator=generator)
    step = 0
    if checkpoint is not None:
        state = checkpoint.start(
            model, optimizer, generator,
            data=(X_train.indptr, X_train.indices, X_train.data, y_train,
                  X_test.indptr, X_test.indices, X_test.data, y_test),
            options=dict(config=dataclasses.asdict(config), n_features=X_train.shape[1], seed=seed, device=device,
                         threads=threads),
            fresh={"epoch": 0, "history": [], "running_loss": [], "step": 0})
        result.history, result.trained = state["history"], state["epoch"]
        running_loss, step = state["running_loss"], state["step"]
    progress = Progress((config.epochs - result.trained) * len(loader), desc, unit="batch")
    for epoch in range(result.trained + 1, config.epochs + 1):
        model.train()
        window_loss, window = 0.0, 0
        for i, (xb, yb) in enumerate(loader, start=1):
            optimizer.zero_grad()
            loss = loss_fn(model(xb.to(device)), yb.to(device))
            value = loss.item()
            if not math.isfinite(value):
                result.diverged_at = epoch
                log(f"[{epoch}, {i}] loss is {value}: diverged, training stopped")
                progress.close()
                return Training(model, result, running_loss)
            loss.backward()
            optimizer.step()
            step += 1
            progress.update()
            window_loss += value
            window += 1
            if i % config.log_every == 0:
                running = window_loss / window
                log(f"[{epoch}, {i}] loss: {running:.3f}")
                running_loss.append({"step": step, "epoch": epoch, "running_loss": running})
                window_loss, window = 0.0, 0
        train_loss, train_accuracy = loss_and_accuracy(model, X_train, y_train, device)
        test_loss, test_accuracy = loss_and_accuracy(model, X_test, y_test, device)
        result.history.append({"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
                               "test_loss": test_loss, "test_accuracy": test_accuracy})
        result.trained = epoch
        if checkpoint is not None:
            checkpoint.save(model, optimizer, generator, epoch=epoch, history=result.history,
                       running_loss=running_loss, step=step)
        progress.report(f"epoch {epoch}/{config.epochs}", train_loss=train_loss, train_accuracy=train_accuracy,
                        test_loss=test_loss, test_accuracy=test_accuracy)
    progress.close()
    return Training(model, result, running_loss)


def scores(model: nn.Module, X: sp.csr_matrix, y: np.ndarray, device, *, train: bool = False) -> tuple[dict, np.ndarray]:
    """A split's scores in the metrics schema of :mod:`nnlab.results`, and P(positive) of every row."""
    probabilities = predict_proba(model, X, device)
    predicted = (probabilities >= 0.5).astype(np.int64)
    return classifier_scores(y, predicted, CLASSES, bce(probabilities, y), train=train), probabilities


def run_metrics(training: Training, source: str, X_train, y_train, X_test, y_test, device) -> tuple[dict, np.ndarray | None]:
    """The run's evaluation record, and P(positive) of every test row (None when it diverged)."""
    if training.result.diverged:
        return model_evaluation(source, training.result.run_record(), diverged_scores(CLASSES, train=True),
                                diverged_scores(CLASSES)), None
    train, _ = scores(training.model, X_train, y_train, device, train=True)
    test, probabilities = scores(training.model, X_test, y_test, device)
    return model_evaluation(source, training.result.run_record(), train, test), probabilities


def save_model(directory: Path, training: Training, config: ClassifierConfig, *, n_features: int,
               source: str) -> None:
    """The trained net and what rebuilds it (see :mod:`nnlab.artifacts`)."""
    artifacts.save_state_dict(directory, training.model)
    artifacts.write_spec(directory, KIND, n_features=n_features, classes=list(CLASSES), source=source,
                         config=dataclasses.asdict(config), run=training.result.run_record())


def load_model(directory: str | Path) -> tuple[SentimentNet, dict]:
    """The net saved by :func:`save_model` (on the CPU, in eval mode) and its spec."""
    spec = artifacts.read_spec(directory, KIND, "imdb_train")
    config = spec["config"]
    model = SentimentNet(spec["n_features"], config["hidden_units"], config["activation"], "default")
    return artifacts.load_state_dict(directory, model), spec
