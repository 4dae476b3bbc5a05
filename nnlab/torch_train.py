"""A shared PyTorch loop for classifiers on (possibly memory-mapped) numpy arrays.

- :class:`ArrayDataset` hands out whole mini-batches from arrays that may be
  read from disk a batch at a time (:class:`nnlab.datasets.npy_rows.NpyRows`), so
  a data set larger than memory is never held whole; :class:`StackedRows` puts
  two such arrays one after the other without copying them together;
- :func:`train_classifier` runs SGD (the reports') or AdamW on
  ``CrossEntropyLoss`` over logits, at a constant rate or warm-up-then-cosine
  (:func:`scheduled_lr`), optionally on augmented batches (:func:`augment`),
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
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from nnlab.datasets.npy_rows import row_indices
from nnlab.results import TrainResult, classifier_scores, diverged_scores, macro_f1, model_evaluation

CLASS_WEIGHTS = ("none", "balanced")
OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("constant", "warmup_cosine")
#: warmup_cosine: the share of all steps over which the rate climbs linearly to its peak.
WARMUP_SHARE = 0.1
#: Slices scored at a time. It bounds the memory of scoring: CNN3's first convolution and ReLU
#: make 4.4 MB per real slice, so 256 slices at once would take 1.1 GB.
EVAL_BATCH_SIZE = 32


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


class StackedRows:
    """The rows of several arrays one after the other, as one array to index by rows or a slice.

    The refit trains on train and validation together: stacked here, each batch reads its rows
    from the part that holds them, where ``np.concatenate`` would copy both (2.2 GB on the real
    MRI slices). The shape, dtype and rows are those of the concatenation, so a digest of the
    data (nnlab/checkpoint.py) is the same too.
    """

    def __init__(self, *parts):
        if len({(part.shape[1:], np.dtype(part.dtype)) for part in parts}) != 1:
            raise ValueError(f"rows of different shapes or types: {[(part.shape, part.dtype) for part in parts]}")
        self.parts = parts
        self.starts = np.cumsum([0, *(len(part) for part in parts)])
        self.shape = (int(self.starts[-1]), *parts[0].shape[1:])
        self.dtype = np.dtype(parts[0].dtype)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        rows = row_indices(key, len(self), "stacked rows")
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for part, start, end in zip(self.parts, self.starts, self.starts[1:]):
            inside = (rows >= start) & (rows < end)
            if inside.any():
                out[inside] = part[rows[inside] - start]
        return out


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


def scheduled_lr(peak: float, schedule: str, step: int, total_steps: int) -> float:
    """The rate of step ``step`` (0-based) of ``total_steps``: ``peak`` throughout (constant), or a
    linear climb over the first :data:`WARMUP_SHARE` of the steps, then a cosine decay towards 0
    (warmup_cosine: large steps early, once Adam's moment estimates have settled, and small ones
    at the end, so the last epochs average out the batch noise). A pure function of the step, so
    a resumed run needs no scheduler state."""
    if schedule == "constant":
        return peak
    warmup = max(1, round(WARMUP_SHARE * total_steps))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def augment(x: torch.Tensor, generator: torch.Generator, *, shift_pixels: int, intensity_jitter: float) -> torch.Tensor:
    """A batch of images (N, C, H, W) moved and re-lit at random, each image on its own.

    ``shift_pixels``: each image is rolled by up to that many pixels along
    each axis (the head's position in the frame varies between scans; the
    slices' borders are background, so what wraps round is background too).
    ``intensity_jitter``: each image is scaled by 1 + j·z₁ and offset by j·z₂
    (z standard normal, in the standardised units the batch is in), as scanner
    gain and offset vary. No flips or rotations: a mirrored slice swaps the
    hemispheres, which is anatomy, not noise. Draws from ``generator`` only, so
    a run (and a resumed run) is reproducible.
    """
    n = len(x)
    if shift_pixels:
        shifts = torch.randint(-shift_pixels, shift_pixels + 1, (n, 2), generator=generator).tolist()
        x = torch.stack([torch.roll(image, (dy, dx), dims=(1, 2)) for image, (dy, dx) in zip(x, shifts)])
    if intensity_jitter:
        gain = 1 + intensity_jitter * torch.randn(n, 1, 1, 1, generator=generator)
        offset = intensity_jitter * torch.randn(n, 1, 1, 1, generator=generator)
        # In place on a batch of our own (the roll's copy, else the product): the same two roundings
        # as ``x * gain + offset``, without two more passes over full-size slices.
        x = x.mul_(gain) if shift_pixels else x * gain
        x.add_(offset)
    return x


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


def validation_scores(model: nn.Module, validation: ArrayDataset, n_classes: int, device: torch.device) -> dict:
    """``validation_loss``, ``validation_accuracy`` and ``validation_macro_f1`` of the model now."""
    loss, predicted = evaluate(model, validation, device)
    return {"validation_loss": loss, "validation_accuracy": float(np.mean(predicted == validation.labels)),
            "validation_macro_f1": macro_f1(validation.labels, predicted, n_classes)}


@contextmanager
def step_as_gradients_arrive(stepper: torch.optim.Optimizer):
    """Within it, ``loss.backward()`` steps each parameter as soon as its gradient is complete and
    frees that gradient (PyTorch's "optimizer step in backward").

    ``stepper.step()`` skips a parameter whose gradient is None, so run from a parameter's hook,
    after ``zero_grad()``, it updates that parameter alone, with the arithmetic of a step after
    the whole backward pass (SGD and AdamW update each parameter from its own gradient and state):
    the same numbers. What it saves is memory: CNN1's dense layer (96 million weights on the real
    slices) gets its 370 MB gradient first in the backward pass, and it is freed before the
    convolutions' gradients are made, instead of held beside them.
    """
    def step_and_free(parameter: torch.Tensor) -> None:
        stepper.step()
        parameter.grad = None

    hooks = [parameter.register_post_accumulate_grad_hook(step_and_free)
             for group in stepper.param_groups for parameter in group["params"]]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def train_classifier(model: nn.Module, train: ArrayDataset, test: ArrayDataset, *, epochs: int,
                     batch_size: int, lr: float, device: torch.device, seed: int, n_classes: int,
                     class_weight: str = "none", max_loss: float = math.inf, optimizer: str = "sgd",
                     weight_decay: float = 0.0, lr_schedule: str = "constant", shift_pixels: int = 0,
                     intensity_jitter: float = 0.0, validation: ArrayDataset | None = None,
                     desc: str = "train", threads: int = 1, checkpoint=None) -> TrainResult:
    """SGD or AdamW on shuffled mini-batches; after each epoch, record the train loss and accuracy
    (running means over the epoch's batches, as the weights moved), the test loss and accuracy and,
    given a ``validation`` split, its loss, accuracy and macro-F1 (the figures to choose a model on).

    ``lr`` is the peak of ``lr_schedule`` (:func:`scheduled_lr`); ``weight_decay`` is
    AdamW's decoupled decay (SGD's L2 penalty; the reports ran without); ``shift_pixels`` and ``intensity_jitter``
    augment the training batches (:func:`augment`).

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
    optimizer_class = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}[optimizer]
    stepper = optimizer_class(model.parameters(), lr=lr, weight_decay=weight_decay)
    weights = class_weights(train.labels, n_classes, class_weight)
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device))
    generator = torch.Generator().manual_seed(seed)
    loader = batch_loader(train, batch_size, shuffle=True, generator=generator)
    result = TrainResult(unit="epoch")
    if checkpoint is not None:
        held_out = () if validation is None else (validation.features, validation.labels)
        state = checkpoint.start(
            model, stepper, generator,
            data=(train.features, train.labels, test.features, test.labels, *held_out),
            options=dict(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, n_classes=n_classes,
                         class_weight=class_weight, max_loss=max_loss, optimizer=optimizer,
                         weight_decay=weight_decay, lr_schedule=lr_schedule, shift_pixels=shift_pixels,
                         intensity_jitter=intensity_jitter, device=device, threads=threads),
            fresh={"epoch": 0, "history": []})
        result.history, result.trained = state["history"], state["epoch"]
    progress = Progress((epochs - result.trained) * len(loader), desc, unit="batch")
    with step_as_gradients_arrive(stepper):
        for epoch in range(result.trained + 1, epochs + 1):
            model.train()
            seen, loss_sum, correct = 0, 0.0, 0
            for batch, (x, y) in enumerate(loader):
                step = (epoch - 1) * len(loader) + batch
                for group in stepper.param_groups:
                    group["lr"] = scheduled_lr(lr, lr_schedule, step, epochs * len(loader))
                if shift_pixels or intensity_jitter:
                    x = augment(x, generator, shift_pixels=shift_pixels, intensity_jitter=intensity_jitter)
                # Rebound, so that the batch as read is freed once copied into the network's layout.
                x, y = x.to(device, memory_format=layout), y.to(device)
                logits = model(x)
                loss = loss_fn(logits, y)
                if not math.isfinite(loss.item()) or loss.item() > max_loss:
                    result.diverged_at = epoch
                    progress.report(f"epoch {epoch}/{epochs} diverged", loss=loss.item())
                    progress.close()
                    return result
                stepper.zero_grad()
                loss.backward()   # steps the optimizer too (step_as_gradients_arrive)
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
            if validation is not None:
                scores.update(validation_scores(model, validation, n_classes, device))
            result.history.append({"epoch": epoch, **scores})
            result.trained = epoch
            if checkpoint is not None:
                checkpoint.save(model, stepper, generator, epoch=epoch, history=result.history)
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
