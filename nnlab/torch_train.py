"""A shared PyTorch loop for classifiers on (possibly memory-mapped) numpy arrays.

- :class:`ArrayDataset` hands out whole mini-batches from arrays that may be
  ``np.load(..., mmap_mode="r")`` views, so a data set larger than memory is
  read a batch at a time;
- :func:`train_classifier` runs plain SGD on ``CrossEntropyLoss`` over logits,
  reshuffling the batches every epoch from a seeded generator, with a bar or a
  line per epoch (:class:`nnlab.cli.Progress`); it stops at the first non-finite batch loss, or one above
  ``max_loss`` (cross-entropy on logits is computed stably, so an exploding
  run can stay finite while its ReLUs die), and reports the run as diverged
  instead of carrying NaNs or junk into the metrics;
- :func:`evaluate` gives the mean loss and the predicted labels of a split.

Call :func:`nnlab.runtime.seed_torch` before building the model: with it the
same parameters give the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

CLASS_WEIGHTS = ("none", "balanced")
EVAL_BATCH_SIZE = 256


class ArrayDataset(Dataset):
    """``dataset[indices]`` -> ``(float32 features, int64 labels)`` tensors for a whole batch."""

    def __init__(self, features: np.ndarray, labels: np.ndarray):
        if len(features) != len(labels):
            raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
        self.features = features
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices):
        # Sorted reads are sequential on a memory-mapped file; a batch's order
        # does not change its mean gradient.
        rows = np.sort(np.asarray(indices))
        x = np.ascontiguousarray(self.features[rows], dtype=np.float32)
        return torch.from_numpy(x), torch.from_numpy(self.labels[rows])


def batch_loader(dataset: ArrayDataset, batch_size: int, *, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of ``batch_size``; with ``shuffle`` a new seeded permutation every epoch."""
    if shuffle:
        order = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        order = SequentialSampler(dataset)
    return DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None)


def class_weights(labels: np.ndarray, n_classes: int, mode: str) -> torch.Tensor | None:
    """``balanced``: n / (k * count) per class, as scikit-learn's; classes absent from train get 0."""
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.divide(len(labels), n_classes * counts, out=np.zeros(n_classes), where=counts > 0)
    return torch.tensor(weights, dtype=torch.float32)


def memory_format(model: nn.Module) -> torch.memory_format:
    """``channels_last`` for a network with convolutions, else the default layout.

    On CPU, oneDNN's convolutions run 20 to 35 % faster on channels-last
    (N, H, W, C) batches; a network without convolutions would only pay for a
    copy when it flattens them.
    """
    if any(isinstance(layer, nn.Conv2d) for layer in model.modules()):
        return torch.channels_last
    return torch.contiguous_format


@dataclass
class TrainResult:
    """Per-epoch history rows and whether (and where) the loss stopped being finite."""

    history: list[dict] = field(default_factory=list)
    diverged: bool = False
    diverged_at: dict | None = None


def evaluate(model: nn.Module, dataset: ArrayDataset, device: torch.device) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and the predicted class of every row (in order)."""
    model.eval()
    total_loss, predictions = 0.0, []
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    layout = memory_format(model)
    with torch.no_grad():
        for x, y in batch_loader(dataset, EVAL_BATCH_SIZE, shuffle=False):
            logits = model(x.to(device, memory_format=layout))
            total_loss += loss_fn(logits, y.to(device)).item()
            predictions.append(logits.argmax(dim=1).cpu().numpy())
    return total_loss / len(dataset), np.concatenate(predictions)


def train_classifier(model: nn.Module, train: ArrayDataset, test: ArrayDataset, *, epochs: int,
                     batch_size: int, lr: float, device: torch.device, seed: int, n_classes: int,
                     class_weight: str = "none", max_loss: float = math.inf,
                     desc: str = "train", threads: int = 1) -> TrainResult:
    """SGD on shuffled mini-batches; after each epoch, record train loss and test loss/accuracy.

    ``threads``: torch's thread count. One by default: batches of 5 to 100 small
    slices leave a second thread mostly waiting (it gains 0 to 20 % on an idle
    2-core machine), two runs at once on two threads each were 2.5 times
    slower than on one, and one thread fixes the order of the float sums, so
    the numbers do not depend on the machine's core count.
    """
    from nnlab.cli import Progress

    torch.set_num_threads(threads)
    layout = memory_format(model)
    model.to(device, memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    weights = class_weights(train.labels, n_classes, class_weight)
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device))
    loader = batch_loader(train, batch_size, shuffle=True, seed=seed)
    result = TrainResult()
    progress = Progress(epochs * len(loader), desc, unit="batch")
    for epoch in range(1, epochs + 1):
        model.train()
        seen, loss_sum = 0, 0.0
        for batch, (x, y) in enumerate(loader, start=1):
            loss = loss_fn(model(x.to(device, memory_format=layout)), y.to(device))
            if not math.isfinite(loss.item()) or loss.item() > max_loss:
                result.diverged, result.diverged_at = True, {"epoch": epoch, "batch": batch}
                progress.report(f"epoch {epoch}/{epochs} diverged", batch=batch, loss=loss.item())
                progress.close()
                return result
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
            progress.update()
        test_loss, test_pred = evaluate(model, test, device)
        if not math.isfinite(test_loss):   # the last step itself blew the weights up
            result.diverged, result.diverged_at = True, {"epoch": epoch, "batch": None}
            progress.report(f"epoch {epoch}/{epochs} diverged", test_loss=test_loss)
            progress.close()
            return result
        scores = {"train_loss": loss_sum / seen, "test_loss": test_loss,
                  "test_accuracy": float(np.mean(test_pred == test.labels))}
        result.history.append({"epoch": epoch, **scores})
        progress.report(f"epoch {epoch}/{epochs}", **scores)
    progress.close()
    return result


def scored_run(model: nn.Module, train: ArrayDataset, test: ArrayDataset, class_names: list[str], *,
               device: torch.device, **train_options) -> tuple[dict, TrainResult, dict[str, list[dict]]]:
    """Train, then score both splits: (metrics, training result, confusion records per split).

    ``metrics`` is ``{"train": {...}, "test": {...}, "diverged": bool, ...}`` with loss,
    accuracy, macro-F1, per-class recall and the confusion matrix; a diverged run keeps
    the same keys with ``None`` values and no confusion records.
    """
    from nnlab.metrics import confusion_records, multiclass_metrics

    result = train_classifier(model, train, test, device=device, n_classes=len(class_names), **train_options)
    metrics: dict = {}
    confusion: dict[str, list[dict]] = {}
    for split, data in (("train", train), ("test", test)):
        if result.diverged:
            metrics[split] = {"loss": None, "accuracy": None, "macro_f1": None,
                              "recall": {name: None for name in class_names}, "confusion_matrix": None}
            continue
        loss, predicted = evaluate(model, data, device)
        metrics[split] = {"loss": loss, **multiclass_metrics(data.labels, predicted, class_names)}
        confusion[split] = confusion_records(data.labels, predicted, class_names)
    metrics["diverged"] = result.diverged
    metrics["diverged_at"] = result.diverged_at
    metrics["epochs_completed"] = len(result.history)
    return metrics, result, confusion
