"""The networks of report 001 for 4-class MRI slices, sized from the input shape.

Every builder takes ``input_shape = (channels, height, width)`` and returns a
``torch.nn.Sequential`` that maps a batch to 4 *logits* (no softmax: the loss
is ``CrossEntropyLoss``, which applies log-softmax itself; the report applied
``log_softmax`` before it, i.e. softmax twice). The width of each flattening
layer is measured by a dry run on the input shape, never hard-coded, so the
same code serves the small synthetic default and the 208x176 Kaggle slices.

The improved CNN (``cnn_improved``) was chosen on a validation block of the
real Kaggle training slices (docs/studies/001.md), for reasons the report's
runs and ours showed:

- CNN1's first dense layer has 16*49*41*3000 = 96 million weights at full size
  (and the report's improved CNN drove the training loss to exactly 0.0 while
  testing at 68%): it memorises 5121 images. Here the last map is small and
  goes straight to the logits: about 31 thousand weights in all;
- an average-pool stem brings the 208x176 slice down to 52x44 before any
  convolution: a sixteenth of the arithmetic, so a real epoch takes seconds
  on a CPU, and the atrophy to see (ventricles, sulci, the gap to the skull)
  still spans pixels. Slices of about 52 rows or fewer (the phantoms) get no
  stem;
- three blocks of 3x3 convolution, batch norm, ReLU and 2x2 max-pool, doubling
  the channels (16 to 64), end in a 6x5 map that is flattened, not averaged:
  the slices are registered, so *where* tissue is missing is information (a
  global average lost it and underfitted on the validation block);
- batch normalisation keeps AdamW's large early steps stable, and dropout 0.5
  before the classifier regularises what is left.

Its training recipe (AdamW, warm-up then cosine rate, shifted and re-lit
batches, class-balanced loss) is in params.yaml, not here.
"""
from __future__ import annotations

import gc
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from nnlab import artifacts, memory
from nnlab.errors import ParamError
from nnlab.results import TrainResult

KIND = "mri_net"
N_CLASSES = 4


def _output_shape(layers: nn.Module, input_shape: tuple[int, int, int], name: str) -> tuple[int, ...]:
    """The shape ``layers`` make from one input: a dry run on zeros (two of them: batch norm in
    training mode needs more than one value per channel)."""
    with torch.no_grad():
        try:
            out = layers(torch.zeros(2, *input_shape))
        except RuntimeError:
            out = None
    if out is None or out.numel() == 0:
        channels, height, width = input_shape
        raise ParamError(f"{name}: input {channels}x{height}x{width} is too small for its "
                         f"convolutions and poolings")
    return tuple(out.shape[1:])


def _mlp(input_shape: tuple[int, int, int], hidden: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = input_shape[0] * input_shape[1] * input_shape[2]
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    return nn.Sequential(*layers, nn.Linear(width, N_CLASSES))


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    """5x5 convolution, ReLU, 2x2 max-pool: the report's building block. The ReLU overwrites the
    convolution's output, which nothing else reads: on real slices at batch 100 CNN1 would
    otherwise hold another 160 MB."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size=5), nn.ReLU(inplace=True), nn.MaxPool2d(2)]


def _stem_cnn(input_shape: tuple[int, int, int], conv_channels: list[int], name: str, *, stem_rows: int,
              dropout: float) -> nn.Sequential:
    """An average-pool stem that brings the slice down to about ``stem_rows`` rows (none for a
    slice that small already), then per width a 3x3 convolution (no bias: batch norm supplies
    it), batch norm, ReLU and 2x2 max-pool; the last map flattened, dropout, one linear layer."""
    stem = max(1, round(input_shape[1] / stem_rows))
    blocks: list[nn.Module] = [nn.AvgPool2d(stem)] if stem > 1 else []
    channels = input_shape[0]
    for out_channels in conv_channels:
        blocks += [nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=False),
                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels = out_channels
    features = nn.Sequential(*blocks, nn.Flatten())
    (flat,) = _output_shape(features, input_shape, name)
    return nn.Sequential(features, nn.Dropout(dropout), nn.Linear(flat, N_CLASSES))


class RecomputedInBackward(nn.Sequential):
    """Layers whose activations training does not keep: the backward pass runs them again
    (:func:`torch.utils.checkpoint.checkpoint`), with the same numbers.

    A report CNN's first block works at full resolution: on the real slices CNN1's makes 8x204x172
    floats a slice, 112 MB at batch 100 and 56 MB more of pooling indices, kept until the backward
    pass reaches them, while the dense layer's 370 MB gradient is made. Running the block again
    costs about 4 % of CNN1's step and keeps its training under 1.5 GB (docs/real-data.md).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            return checkpoint(super().forward, x, use_reentrant=False)
        return super().forward(x)


def _cnn(input_shape: tuple[int, int, int], conv_channels: list[int], dense: int, name: str) -> nn.Sequential:
    """The report's CNNs: 5x5 conv blocks (the first :class:`RecomputedInBackward`), flattened into
    a dense ReLU layer, then the logits."""
    blocks: list[nn.Module] = []
    channels = input_shape[0]
    for out_channels in conv_channels:
        block = _conv_block(channels, out_channels)
        blocks += block if blocks else [RecomputedInBackward(*block)]
        channels = out_channels
    features = nn.Sequential(*blocks, nn.Flatten())
    (flat,) = _output_shape(features, input_shape, name)
    return nn.Sequential(features, nn.Linear(flat, dense), nn.ReLU(), nn.Linear(dense, N_CLASSES))


def simple_nn1(input_shape):
    """Report's SimpleNN1: flattened input-1024-512-256-128-64-4, ReLU."""
    return _mlp(input_shape, [1024, 512, 256, 128, 64])


def simple_nn2(input_shape):
    """Report's SimpleNN2: flattened input-128-4, ReLU."""
    return _mlp(input_shape, [128])


def cnn1(input_shape):
    """Report's CNN1: conv 8 and 16 (5x5, ReLU, 2x2 max-pool), fc 3000, 4 outputs."""
    return _cnn(input_shape, [8, 16], 3000, "cnn1")


def cnn_improved(input_shape):
    """CNN1 reworked (see the module docstring): average-pool stem to about 52 rows, conv 16-32-64
    (3x3, batch norm, 2x2 max-pool), flattened, dropout 0.5, linear to 4 logits."""
    return _stem_cnn(input_shape, [16, 32, 64], "cnn_improved", stem_rows=52, dropout=0.5)


def cnn3(input_shape):
    """Report's CNN3 (the learning-rate study): conv 16, 32 and 64, fc 128."""
    return _cnn(input_shape, [16, 32, 64], 128, "cnn3")


MODELS: dict[str, Callable[[tuple[int, int, int]], nn.Module]] = {
    "simple_nn1": simple_nn1, "simple_nn2": simple_nn2, "cnn1": cnn1,
    "cnn_improved": cnn_improved, "cnn3": cnn3,
}


def check_training_memory(train_file: str, weights_key: tuple, batch_key: tuple, name: str, *, batch: int,
                          optimizer: str) -> None:
    """Refuse, before any data are read, to train network ``name`` on the slices of ``train_file``
    in batches of ``batch`` if that needs more memory than there is (:func:`nnlab.memory.torch_net`,
    whose keys name the parameters; scoring takes batches of the evaluation size). A file that
    cannot be read is left to the reading, which says why."""
    from nnlab.torch_train import EVAL_BATCH_SIZE

    shape = memory.npy_shape(train_file)
    if shape is None or len(shape) != 4:
        return
    input_shape = shape[1:]
    memory.check(memory.torch_net(weights_key, batch_key, lambda: MODELS[name](input_shape), batch=batch,
                                  eval_batch=EVAL_BATCH_SIZE, optimizer_slots=2 if optimizer == "adamw" else 0,
                                  sample_shape=input_shape))


def fit(name: str, train, test, *, seed: int, device: torch.device, n_classes: int = N_CLASSES,
        **train_options) -> tuple[nn.Module, TrainResult]:
    """Seed torch, build model ``name`` for the data's shape and train it
    (:func:`nnlab.torch_train.train_classifier`'s options)."""
    from nnlab.runtime import seed_torch
    from nnlab.torch_train import train_classifier

    seed_torch(seed)
    model = MODELS[name](tuple(train.features.shape[1:]))
    result = train_classifier(model, train, test, device=device, seed=seed, n_classes=n_classes,
                              desc=train_options.pop("desc", name), **train_options)
    return model, result


def fit_and_refit(name: str, train, validation, test, *, refit: bool, checkpoints: tuple, seed: int,
                  device: torch.device, **train_options) -> tuple[nn.Module, TrainResult]:
    """Train ``name`` on ``train``, scoring ``validation`` after every epoch (the validation run); with
    ``refit``, train it once more from the same seed and recipe on ``train`` and ``validation``
    together (the final run) and return that model.

    The Kaggle test split holds the top axial levels of the training brains (docs/studies/001.md),
    and the validation block the top levels of the training split, so a model fitted without the
    validation block never sees the levels next to the test slices. The final run's history keeps
    its own train and test columns and takes the validation columns from the validation run's
    epoch of the same number: what the recipe scored on held-out levels. ``checkpoints`` is one
    :class:`nnlab.checkpoint.Checkpoint` per run (or ``(None, None)``). A validation run that
    diverged is returned as it is: the same recipe on more slices is no steadier.
    """
    validation_checkpoint, final_checkpoint = checkpoints
    desc = train_options.pop("desc", name)
    model, result = fit(name, train, test, validation=validation, seed=seed, device=device,
                        checkpoint=validation_checkpoint, desc=f"{desc} (validation run)" if refit else desc,
                        **train_options)
    if not refit or result.diverged:
        return model, result
    from nnlab.torch_train import ArrayDataset, StackedRows

    everything = ArrayDataset(StackedRows(train.features, validation.features),
                              np.concatenate([train.labels, validation.labels]))
    validation_scores = {row["epoch"]: {key: value for key, value in row.items() if key.startswith("validation_")}
                         for row in result.history}
    # The validation run's weights could otherwise stay in memory beside the final run's: a
    # reference cycle left by its training holds them until the cycle collector happens to run.
    del model
    gc.collect()
    model, final = fit(name, everything, test, seed=seed, device=device, checkpoint=final_checkpoint,
                       desc=f"{desc} (final run, train + validation)", **train_options)
    final.history = [{**row, **validation_scores[row["epoch"]]} for row in final.history]
    return model, final


def save_model(directory: Path, model: nn.Module, name: str, *, input_shape: tuple[int, int, int],
               class_names: list[str], source: str, options: dict, result: TrainResult) -> None:
    """The trained network and what rebuilds it (see :mod:`nnlab.artifacts`)."""
    artifacts.save_state_dict(directory, model)
    artifacts.write_spec(directory, KIND, architecture=name, input_shape=list(input_shape),
                         class_names=class_names, source=source, options=options, run=result.run_record())


def load_model(directory: str | Path, stage: str) -> tuple[nn.Module, dict]:
    """The network saved by :func:`save_model` (on the CPU, in eval mode, in the memory layout it
    was trained in, so that it computes the very same numbers) and its spec."""
    from nnlab.torch_train import memory_format

    spec = artifacts.read_spec(directory, KIND, stage)
    model = MODELS[spec["architecture"]](tuple(spec["input_shape"]))
    model = artifacts.load_state_dict(directory, model)
    return model.to(memory_format=memory_format(model)), spec
