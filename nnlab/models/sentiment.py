"""The report 000 §3 sentiment classifier: three fully connected layers on TF-IDF.

``input -> hidden[0] -> hidden[1] -> 1``, the hidden activation a choice
(relu, sigmoid, tanh, leaky_relu), a sigmoid output, binary cross-entropy,
plain SGD over shuffled mini-batches. The TF-IDF matrices stay sparse; each
mini-batch is made dense only when it is drawn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler
from tqdm import tqdm

from nnlab.metrics import binary_metrics

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}
INITS = ("default", "zeros")


@dataclass(frozen=True)
class ClassifierConfig:
    hidden_units: tuple[int, int] = (64, 32)
    activation: str = "relu"
    init: str = "default"      # default: PyTorch's; zeros: every weight and bias 0
    lr: float = 0.01
    batch_size: int = 16
    epochs: int = 10
    log_every: int = 2000      # mini-batches between running-loss lines (the report's 2000)


class SentimentNet(nn.Module):
    def __init__(self, n_features: int, hidden_units, activation: str, init: str):
        super().__init__()
        first, second = hidden_units
        self.layers = nn.Sequential(
            nn.Linear(n_features, first), ACTIVATIONS[activation](),
            nn.Linear(first, second), ACTIVATIONS[activation](),
            nn.Linear(second, 1), nn.Sigmoid(),
        )
        if init == "zeros":
            for parameter in self.parameters():
                nn.init.zeros_(parameter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(1)


class SparseRows(Dataset):
    """Rows of a CSR matrix, indexed by a whole batch of row numbers at once."""

    def __init__(self, X: sp.csr_matrix, y: np.ndarray):
        if not X.has_canonical_format:   # the scatter below writes each entry once
            X = X.copy()
            X.sum_duplicates()
        # A copy: y may be a read-only view of a loaded .npz, which torch warns about.
        self.X, self.y = X, torch.tensor(y, dtype=torch.float32)

    def __len__(self) -> int:
        return self.X.shape[0]

    def __getitem__(self, rows):
        """The rows, dense, scattered straight from the CSR arrays into torch's own memory.

        scipy's ``X[rows].toarray()`` spent 0.3 ms a batch of 16 building a CSR
        matrix first; and numpy's 16-byte aligned arrays made the first layer's
        products about 30 % slower than torch's 64-byte aligned ones.
        """
        rows = np.asarray(rows)
        starts = self.X.indptr[rows]
        lengths = self.X.indptr[rows + 1] - starts
        # positions in X.data of every stored entry of the chosen rows, row by row
        row_of_entry = np.repeat(np.arange(len(rows)), lengths)
        entries = np.arange(lengths.sum()) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        dense = torch.zeros((len(rows), self.X.shape[1]), dtype=torch.float32)
        dense.numpy()[row_of_entry, self.X.indices[entries]] = self.X.data[entries]
        return dense, self.y[rows]


def batches(X: sp.csr_matrix, y: np.ndarray, batch_size: int, *, shuffle: bool,
            generator: torch.Generator | None = None) -> DataLoader:
    dataset = SparseRows(X, y)
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    # batch_size=None: the sampler hands whole batches of indices to the dataset
    return DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None)


@dataclass
class TrainResult:
    model: SentimentNet
    history: list[dict] = field(default_factory=list)       # one row per epoch
    running_loss: list[dict] = field(default_factory=list)  # one row per log_every mini-batches
    diverged: bool = False


@torch.no_grad()
def predict_proba(model: nn.Module, X: sp.csr_matrix, device, batch_size: int = 4096) -> np.ndarray:
    model.eval()
    out = [model(xb.to(device)).cpu() for xb, _ in batches(X, np.zeros(X.shape[0]), batch_size, shuffle=False)]
    return torch.cat(out).numpy()


def bce(probabilities: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probabilities.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train_classifier(X_train: sp.csr_matrix, y_train: np.ndarray, X_test: sp.csr_matrix,
                     y_test: np.ndarray, config: ClassifierConfig, *, seed: int, device,
                     desc: str = "imdb_train", log=print) -> TrainResult:
    """SGD on BCE; stops at the first non-finite loss and marks the run diverged."""
    from nnlab.runtime import seed_torch

    seed_torch(seed)
    # Batches of 16 are too small to share between threads: a second thread
    # only adds synchronisation (several times slower on a busy 2-core machine).
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(seed)
    model = SentimentNet(X_train.shape[1], config.hidden_units, config.activation, config.init).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    loss_fn = nn.BCELoss()
    result = TrainResult(model)
    loader = batches(X_train, y_train, config.batch_size, shuffle=True, generator=generator)
    step = 0
    progress = tqdm(total=config.epochs * len(loader), desc=desc, unit="batch", disable=None, leave=False)
    for epoch in range(1, config.epochs + 1):
        model.train()
        epoch_loss, window_loss, window = 0.0, 0.0, 0
        for i, (xb, yb) in enumerate(loader, start=1):
            optimizer.zero_grad()
            loss = loss_fn(model(xb.to(device)), yb.to(device))
            value = loss.item()
            if not math.isfinite(value):
                result.diverged = True
                log(f"[{epoch}, {i}] loss is {value}: diverged, training stopped")
                progress.close()
                return result
            loss.backward()
            optimizer.step()
            step += 1
            progress.update()
            epoch_loss += value * len(yb)
            window_loss += value
            window += 1
            if i % config.log_every == 0:
                running = window_loss / window
                log(f"[{epoch}, {i}] loss: {running:.3f}")
                result.running_loss.append({"step": step, "epoch": epoch, "running_loss": running})
                window_loss, window = 0.0, 0
        test_loss = bce(predict_proba(model, X_test, device), y_test)
        result.history.append({"epoch": epoch, "train_loss": epoch_loss / len(y_train), "test_loss": test_loss})
    progress.close()
    return result


def evaluate(model: nn.Module, X: sp.csr_matrix, y: np.ndarray, device) -> tuple[dict, np.ndarray]:
    """Accuracy, precision, recall, F1, BCE loss and confusion matrix; and the predictions."""
    from sklearn.metrics import confusion_matrix

    probabilities = predict_proba(model, X, device)
    predicted = (probabilities >= 0.5).astype(np.int64)
    metrics = binary_metrics(y, predicted)
    metrics["loss"] = bce(probabilities, y)
    # rows = actual (negative, positive), columns = predicted
    metrics["confusion_matrix"] = confusion_matrix(y, predicted, labels=[0, 1]).tolist()
    return metrics, predicted


def run_metrics(result: TrainResult, X_train, y_train, X_test, y_test, device) -> tuple[dict, dict]:
    """The nested metrics of a run, and the test predictions (None when diverged)."""
    if result.diverged:
        empty = {k: None for k in ("accuracy", "precision", "recall", "f1", "loss")}
        return {"train": empty, "test": dict(empty), "diverged": True}, {}
    train, _ = evaluate(result.model, X_train, y_train, device)
    test, predicted = evaluate(result.model, X_test, y_test, device)
    return {"train": train, "test": test, "diverged": False}, {"test": predicted}
