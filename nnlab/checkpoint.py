"""Epoch checkpoints, so that an interrupted torch training resumes where it stopped.

A training loop given a checkpoint path (stages ``mri_model@<name>`` and
``imdb_train``; dvc.yaml declares the file, or its folder, an output with
``persist: true``, so DVC leaves it in place when it reruns the stage) works
like this:

- :meth:`Checkpoint.resume` loads the file if it was written by a run with the
  same :func:`run_description`: what shaped the numbers (the training options,
  seed, model architecture, device, thread count, a digest of the training and
  test data, torch's version, and the source of the project code the process
  has loaded). The model, the optimizer, the history so far and every random
  generator the later epochs draw from are restored, and the loop continues at
  the next epoch. A file of any other run, or one that cannot be read, is
  ignored: the run starts fresh, and says why on stdout.
- :meth:`Checkpoint.save` writes the state after every completed epoch (and the
  starting state, epoch 0, before the first), replacing the file at once
  (:func:`nnlab.io.replace_file`), so a kill at any moment leaves a whole
  checkpoint.

So the resumed run draws the same shuffles and dropout masks, in the same
order, as an uninterrupted one, and its model, history and metrics are the same
bytes. numpy's generators are not drawn from during training, so there is no
numpy state to keep.

The final checkpoint is kept when the run completes: DVC records the hash of
every output, and a forced rerun (``dvc repro -f``, a DVC checkout of the same
run) then skips straight to the end instead of training again. It costs the
size of the weights once more in DVC's cache. Its bytes depend only on the run
(``torch.save`` into an open file, no file names, no times), so ``dvc.lock`` is the
same after an interrupted and an uninterrupted run.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nnlab.io import replace_file

PROJECT = Path(__file__).resolve().parents[1]
#: Project code whose source is part of a run's description (tests, scripts elsewhere are not).
CODE_FOLDERS = ("nnlab", "stages")
HASH_CHUNK_BYTES = 8 << 20   # a bounded read: the digest must not add to a stage's peak memory


def data_digest(*arrays: np.ndarray) -> str:
    """SHA-256 of the arrays' dtypes, shapes and contents, read a chunk at a time (arrays on
    disk of several GB are never copied whole; the real MRI set takes about 4 s)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        rows = max(1, HASH_CHUNK_BYTES // max(1, array[:1].nbytes))
        for start in range(0, len(array), rows):
            digest.update(np.ascontiguousarray(array[start:start + rows]).data)
    return digest.hexdigest()


def _runs_code(source: str) -> bool:
    """False for a file of nothing but a docstring: dvc.yaml leaves such files out of a stage's deps
    (tests/test_dvc_deps.py), so their text must not change a checkpoint's bytes either."""
    import ast

    body = ast.parse(source).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def code_digest() -> str:
    """SHA-256 of the project modules this process has loaded, by path.

    A fixed bug in the training loop must not be resumed over (the final
    checkpoint would otherwise hand back the old model). The loaded modules
    are a subset of the stage's deps in dvc.yaml, so a change here is always
    one that makes DVC rerun the stage.
    """
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.endswith(".py"):
            path = Path(path).resolve()
            if path.is_relative_to(PROJECT) and path.relative_to(PROJECT).parts[0] in CODE_FOLDERS:
                files.add(path)
    digest = hashlib.sha256()
    for path in sorted(files):
        source = path.read_text(encoding="utf-8")
        if _runs_code(source):
            digest.update(f"{path.relative_to(PROJECT).as_posix()}\0{source}\0".encode())
    return digest.hexdigest()


def run_description(model: nn.Module, **options) -> dict:
    """What shapes a run's numbers: ``options`` (the loop's settings, seed, device, threads, data digest)
    plus the model's architecture, torch's version and the project code. JSON values, keys sorted."""
    described = {**options, "architecture": repr(model), "torch": torch.__version__, "code": code_digest()}
    return json.loads(json.dumps(described, sort_keys=True, default=str))


def _rng_states(generator: torch.Generator) -> dict:
    """The shuffling generator, and torch's global ones (dropout, the DataLoader's base seed)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"shuffle": generator.get_state(), "torch": torch.get_rng_state(), "cuda": cuda}


def _set_rng_states(generator: torch.Generator, states: dict) -> None:
    generator.set_state(states["shuffle"])
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])


class Checkpoint:
    """The checkpoint file at ``path`` (see the module docstring).

    A stage makes one and hands it to a training loop, which calls :meth:`start`
    once and :meth:`save` after every epoch. The loops never import this module,
    so the stages that train without checkpoints do not depend on it.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.description: dict | None = None

    def start(self, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator, *,
              options: dict, data: tuple[np.ndarray, ...], fresh: dict) -> dict:
        """The progress to continue from.

        ``options`` (the loop's settings, seed, device, threads) and a digest of
        the ``data`` arrays describe the run (:func:`run_description`). When the
        file holds this run, model, optimizer and generators are restored and its
        progress (``epoch``, ``history``, ...) returned; else ``fresh`` is saved at
        once as the starting state (so that the file exists, as DVC expects of
        an output, even when the first epoch diverges) and returned.
        """
        self.description = run_description(model, data=data_digest(*data), **options)
        saved = self.resume(model, optimizer, generator)
        if saved is not None:
            return saved
        self.save(model, optimizer, generator, **fresh)
        return fresh

    def resume(self, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> dict | None:
        """Restore model, optimizer and random generators from the file if it is this run's, and return
        what the loop saved with them; None to start fresh."""
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            description = json.loads(saved["description"])
        except Exception as exc:   # any unreadable file only means training from the start
            print(f"{self.path}: unreadable checkpoint ({exc}): starting fresh", flush=True)
            return None
        if description != self.description:
            differing = sorted(key for key in {*description, *self.description}
                               if description.get(key) != self.description.get(key))
            print(f"{self.path}: a checkpoint of another run (differs in {', '.join(differing)}): starting fresh",
                  flush=True)
            return None
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        _set_rng_states(generator, saved["rng"])
        progress = json.loads(saved["progress"])
        print(f"{self.path}: resuming after epoch {progress['epoch']}", flush=True)
        return progress

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator,
             **progress) -> None:
        """Replace the file with the state now; ``progress`` (``epoch``, ``history``, ...) comes back
        from :meth:`resume`."""
        state = {
            "description": json.dumps(self.description, sort_keys=True),
            "model": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "rng": _rng_states(generator),
            # As JSON text: pickle would store a list read back from a checkpoint in other bytes than
            # the same list built by an uninterrupted run (it shares repeated objects by identity).
            "progress": json.dumps(progress),
        }
        # Given an open file rather than its (random temporary) name, torch.save names the archive
        # inside "archive", as it does in memory: the bytes depend on the run alone.
        replace_file(self.path, lambda handle: torch.save(state, handle))
