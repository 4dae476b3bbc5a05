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
- :func:`evaluate` gives the mean loss and the predicted labels of a split, and
  :func:`run_metrics` a run's metrics record (:mod:`nnlab.results`).

Call :func:`nnlab.runtime.seed_torch` before building the model: with it the
same parameters give the same numbers.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from nnlab.results import TrainResult, classifier_scores, diverged_scores, model_evaluation

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


def batch_loader(dataset: ArrayDataset, batch_size: int, *, shuffle: bool,
                 generator: torch.Generator | None = None) -> DataLoader:
    """Batches of ``batch_size``; with ``shuffle`` a new permutation every epoch, drawn from ``generator``."""
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
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
                     desc: str = "train", threads: int = 1, checkpoint=None) -> TrainResult:
    """SGD on shuffled mini-batches; after each epoch, record the train loss and accuracy (running
    means over the epoch's batches, as the weights moved) and the test loss and accuracy.

    ``threads``: torch's thread count (stages pass ``train.threads``, see
    :func:`nnlab.params.train_settings`). One by default: it fixes the order of
    the float sums, so the numbers do not depend on the machine's core count.

    ``checkpoint``: a :class:`nnlab.checkpoint.Checkpoint` to save the run to after
    every epoch and to resume it from; the result is the same either way.
    """
    from nnlab.cli import Progress

    torch.set_num_threads(threads)
    layout = memory_format(model)
    model.to(device, memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    weights = class_weights(train.labels, n_classes, class_weight)
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device))
    generator = torch.Generator().manual_seed(seed)
    loader = batch_loader(train, batch_size, shuffle=True, generator=generator)
    result = TrainResult(unit="epoch")
    if checkpoint is not None:
        state = checkpoint.start(
            model, optimizer, generator, data=(train.features, train.labels, test.features, test.labels),
            options=dict(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, n_classes=n_classes,
                         class_weight=class_weight, max_loss=max_loss, device=device, threads=threads),
            fresh={"epoch": 0, "history": []})
        result.history, result.trained = state["history"], state["epoch"]
    progress = Progress((epochs - result.trained) * len(loader), desc, unit="batch")
    for epoch in range(result.trained + 1, epochs + 1):
        model.train()
        seen, loss_sum, correct = 0, 0.0, 0
        for x, y in loader:
            y = y.to(device)
            logits = model(x.to(device, memory_format=layout))
            loss = loss_fn(logits, y)
            if not math.isfinite(loss.item()) or loss.item() > max_loss:
                result.diverged_at = epoch
                progress.report(f"epoch {epoch}/{epochs} diverged", loss=loss.item())
                progress.close()
                return result
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
            progress.update()
        test_loss, test_pred = evaluate(model, test, device)
        if not math.isfinite(test_loss):   # the last step itself blew the weights up
            result.diverged_at = epoch
            progress.report(f"epoch {epoch}/{epochs} diverged", test_loss=test_loss)
            progress.close()
            return result
        scores = {"train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                  "test_loss": test_loss, "test_accuracy": float(np.mean(test_pred == test.labels))}
        result.history.append({"epoch": epoch, **scores})
        result.trained = epoch
        if checkpoint is not None:
            checkpoint.save(model, optimizer, generator, epoch=epoch, history=result.history)
        progress.report(f"epoch {epoch}/{epochs}", **scores)
    progress.close()
    return result


def run_metrics(model: nn.Module, result: TrainResult, train: ArrayDataset, test: ArrayDataset,
                class_names: list[str], device: torch.device, source: str) -> tuple[dict, np.ndarray | None]:
    """The run's evaluation record (see :mod:`nnlab.results`), and the predicted class of every test
    row (None when the run diverged: its weights are not a model)."""
    if result.diverged:
        return model_evaluation(source, result.run_record(), diverged_scores(class_names, train=True),
                                diverged_scores(class_names)), None
    splits = {}
    for split, data in (("train", train), ("test", test)):
        loss, predicted = evaluate(model, data, device)
        splits[split] = classifier_scores(data.labels, predicted, class_names, loss, train=split == "train")
    return model_evaluation(source, result.run_record(), splits["train"], splits["test"]), predicted
