"""Trained models and fitted preprocessing as files, one folder each under ``models/``.

A folder holds the weights (``weights.npz`` for the hand-written numpy models, a
``state_dict`` in ``weights.pt`` for torch ones) and ``spec.json``: what rebuilds
the model (its kind, architecture and sizes, class names, the params that shaped
it, the data source, how its training run ended). Train stages write them
(through :class:`nnlab.io.StageOutputs`, into a temporary folder); evaluate stages
and ``python -m nnlab.predict`` read them with the loader of their kind. Weights
are stored on the CPU, so a model trained on a GPU loads on a laptop.

Bytes are reproducible: torch's archive is written from memory (saved to a file,
it would record the temporary file's random name).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nnlab.errors import DataError
from nnlab.io import dumps_json

SPEC = "spec.json"
NUMPY_WEIGHTS = "weights.npz"
TORCH_WEIGHTS = "weights.pt"


def write_spec(directory: Path, kind: str, **spec: Any) -> None:
    (directory / SPEC).write_text(dumps_json({"kind": kind, **spec}), encoding="utf-8")


def read_spec(directory: str | Path, kind: str | tuple[str, ...], stage: str) -> dict:
    """``spec.json`` of a model folder of ``kind`` (or of one of several kinds); a missing one says which
    stage makes it."""
    path = Path(directory) / SPEC
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{directory}: missing (run `dvc repro {stage}` to make it)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable model spec ({exc}); rerun `dvc repro {stage}`") from None
    kinds = (kind,) if isinstance(kind, str) else kind
    if spec.get("kind") not in kinds:
        raise DataError(f"{path}: a {spec.get('kind')!r} model, not {' or '.join(map(repr, kinds))}")
    return spec


def save_arrays(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(directory / NUMPY_WEIGHTS, "wb") as handle:
        np.savez(handle, **arrays)


def load_arrays(directory: str | Path) -> dict[str, np.ndarray]:
    path = Path(directory) / NUMPY_WEIGHTS
    try:
        with np.load(path) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable weights ({exc})") from None


def save_state_dict(directory: Path, model) -> None:
    import torch

    # An open file, not a path: torch.save would name the archive inside after the file.
    with open(directory / TORCH_WEIGHTS, "wb") as handle:
        torch.save({name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}, handle)


def load_state_dict(directory: str | Path, model):
    """``model`` with the weights of ``directory`` loaded, in eval mode, on the CPU."""
    import torch

    path = Path(directory) / TORCH_WEIGHTS
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DataError(f"{path}: weights that do not fit the model in {SPEC} ({exc})") from None
    return model.eval()
