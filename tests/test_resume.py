"""A torch training stage killed after an epoch resumes from its checkpoint (nnlab/checkpoint.py)
and ends with the same bytes as an uninterrupted run; with other params or data it starts fresh.

The kills are of real stage processes on tiny params, in folders whose data the data stages
made; what the checkpoint accepts and refuses is tested on the training loop, in this process.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, deep_merge, run_stage, tiny_params, venv_env

EPOCHS = 3
MRI_MODEL = "simple_nn2"
MRI_CHECKPOINTS = f"checkpoints/mri_{MRI_MODEL}"
MRI_OUTPUTS = [f"models/mri_{MRI_MODEL}/weights.pt", f"models/mri_{MRI_MODEL}/spec.json",
               f"plots/mri_{MRI_MODEL}/history.csv", f"{MRI_CHECKPOINTS}/validation_run.pt",
               f"{MRI_CHECKPOINTS}/final_run.pt"]
MRI_METRICS = [f"metrics/mri_{MRI_MODEL}.json", f"plots/mri_{MRI_MODEL}/confusion.json"]
IMDB_OUTPUTS = ["models/imdb_train/weights.pt", "models/imdb_train/spec.json", "plots/imdb_train/history.csv",
                "plots/imdb_train/running_loss.csv", "checkpoints/imdb_train.pt"]
# `python -c KILL_IN_EPOCH_2 <checkpoint file name> <module> <args>` runs the module as `python -m` would,
# but SIGKILLs it at the first optimizer step after that checkpoint's epoch 1 is written: in epoch 2.
KILL_IN_EPOCH_2 = """
import os, runpy, signal, sys
import torch
from nnlab.checkpoint import Checkpoint
save = Checkpoint.save
kill_in = sys.argv.pop(1)
def save_then_die_in_the_next_epoch(self, *args, **progress):
    save(self, *args, **progress)
    if progress["epoch"] == 1 and self.path.name == kill_in:
        torch.optim.SGD.step = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
Checkpoint.save = save_then_die_in_the_next_epoch
runpy.run_module(sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""


def params(**overrides) -> dict:
    return deep_merge(tiny_params(), {"mri_simple_nn2": {"epochs": EPOCHS}, "imdb_train": {"epochs": EPOCHS},
                                      **overrides})


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def in_parallel(*calls):
    """The calls' results; stage processes are mostly waiting for their imports, two at a time."""
    with ThreadPoolExecutor(2) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """{"mri": folder, "imdb": folder}, each holding data/ as its data stages wrote it."""
    folders = {name: tmp_path_factory.mktemp(name) for name in ("mri", "imdb")}
    for stages in ({"mri": "mri_data", "imdb": "imdb_data"}, {"mri": "mri_normalize", "imdb": "imdb_preprocess"}):
        in_parallel(*(lambda stage=stage, folder=folders[dataset]: succeeded(run_stage(stage, params(), folder))
                      for dataset, stage in stages.items()))
    return folders


def workspace(data: dict[str, Path], dataset: str, path: Path) -> Path:
    shutil.copytree(data[dataset] / "data", path / "data")
    return path


def run_killed(checkpoint: str, stage_args: list[str], values: dict, cwd: Path) -> subprocess.CompletedProcess:
    (cwd / "params.test.yaml").write_text(yaml.safe_dump(values))
    return subprocess.run([sys.executable, "-c", KILL_IN_EPOCH_2, checkpoint, *stage_args, "--params", "params.test.yaml"],
                          cwd=cwd, env={**venv_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=300)


def assert_same_bytes(ours: Path, theirs: Path, files: list[str]) -> None:
    differing = [name for name in files if (ours / name).read_bytes() != (theirs / name).read_bytes()]
    assert not differing, f"differ from the uninterrupted run: {differing}"


def test_mri_training_killed_in_its_final_run_resumes_to_the_same_model_history_and_metrics(data, tmp_path):
    whole = workspace(data, "mri", tmp_path / "whole")
    killed = workspace(data, "mri", tmp_path / "killed")
    stage = ["stages.mri_train", "--model", MRI_MODEL]
    _, kill = in_parallel(lambda: succeeded(run_stage("mri_train", params(), whole, args=["--model", MRI_MODEL])),
                          lambda: run_killed("final_run.pt", stage, params(), killed))
    assert kill.returncode == -9, kill.stdout + kill.stderr
    assert (killed / f"{MRI_CHECKPOINTS}/final_run.pt").is_file()
    assert not (killed / "models" / f"mri_{MRI_MODEL}").exists()   # outputs appear only at the end

    def evaluate(cwd: Path) -> subprocess.CompletedProcess:
        return succeeded(run_stage("mri_evaluate", params(), cwd, args=["--model", MRI_MODEL]))

    resumed, _ = in_parallel(lambda: succeeded(run_stage("mri_train", params(), killed, args=["--model", MRI_MODEL])),
                             lambda: evaluate(whole))
    # The validation run had ended: it skips to its end; the final run goes on from epoch 2.
    assert f"{MRI_CHECKPOINTS}/validation_run.pt: resuming after epoch {EPOCHS}" in resumed.stdout
    assert f"{MRI_CHECKPOINTS}/final_run.pt: resuming after epoch 1" in resumed.stdout
    assert f"epoch 1/{EPOCHS}" not in resumed.stdout and f"epoch 2/{EPOCHS}" in resumed.stdout
    assert_same_bytes(killed, whole, MRI_OUTPUTS)
    evaluate(killed)
    assert_same_bytes(killed, whole, MRI_METRICS)


def test_killed_imdb_training_resumes_to_the_same_model_and_history(data, tmp_path):
    whole = workspace(data, "imdb", tmp_path / "whole")
    killed = workspace(data, "imdb", tmp_path / "killed")
    _, kill = in_parallel(lambda: succeeded(run_stage("imdb_train", params(), whole)),
                          lambda: run_killed("imdb_train.pt", ["stages.imdb_train"], params(), killed))
    assert kill.returncode == -9, kill.stdout + kill.stderr

    resumed = succeeded(run_stage("imdb_train", params(), killed))
    assert "checkpoints/imdb_train.pt: resuming after epoch 1" in resumed.stdout
    assert_same_bytes(killed, whole, IMDB_OUTPUTS)


def random_slices(n: int, seed: int):
    import numpy as np

    from nnlab.torch_train import ArrayDataset

    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.random((n, 1, 12, 10), dtype=np.float32), rng.integers(0, 4, n))


def fit(checkpoint_path: Path | None, data_seed: int = 0, **changes):
    """simple_nn2 for EPOCHS epochs on random slices: (state_dict, history)."""
    import torch

    from nnlab.checkpoint import Checkpoint
    from nnlab.models import mri_nets

    options = {"epochs": EPOCHS, "batch_size": 8, "lr": 0.01, "class_weight": "none", "max_loss": 100.0, **changes}
    model, result = mri_nets.fit(MRI_MODEL, random_slices(40, data_seed), random_slices(12, 99), seed=0,
                                 device=torch.device("cpu"), desc=None, **options,
                                 checkpoint=None if checkpoint_path is None else Checkpoint(checkpoint_path))
    return model.state_dict(), result


def assert_same_run(ours, theirs) -> None:
    import torch

    assert ours[1] == theirs[1]
    assert ours[0].keys() == theirs[0].keys() and all(torch.equal(ours[0][k], theirs[0][k]) for k in ours[0])


def test_other_params_or_data_start_fresh_and_the_same_run_skips_to_its_end(tmp_path, capsys):
    path = tmp_path / "run.pt"
    fit(path)
    assert capsys.readouterr().out == ""   # no checkpoint yet: a fresh start says nothing

    other_lr = fit(path, lr=0.05)
    assert capsys.readouterr().out == f"{path}: a checkpoint of another run (differs in lr): starting fresh\n"
    assert_same_run(other_lr, fit(None, lr=0.05))

    fit(path, lr=0.05, data_seed=1)
    assert capsys.readouterr().out == f"{path}: a checkpoint of another run (differs in data): starting fresh\n"

    # The final checkpoint is kept: the same run again (`dvc repro -f`) trains nothing.
    again = fit(path, lr=0.05, data_seed=1)
    assert capsys.readouterr().out == f"{path}: resuming after epoch {EPOCHS}\n"
    assert_same_run(again, fit(None, lr=0.05, data_seed=1))


def test_an_unreadable_checkpoint_means_a_fresh_start(tmp_path, capsys):
    path = tmp_path / "run.pt"
    path.write_bytes(b"half a checkpoint")
    assert_same_run(fit(path), fit(None))
    assert capsys.readouterr().out.startswith(f"{path}: unreadable checkpoint (")


def test_a_run_that_diverges_in_its_first_epoch_leaves_a_checkpoint_to_resume(tmp_path, capsys):
    """DVC expects every declared output after the stage: the starting state is saved before epoch 1."""
    path = tmp_path / "run.pt"
    first = fit(path, max_loss=1e-6)
    assert first[1].diverged_at == 1 and path.is_file()
    again = fit(path, max_loss=1e-6)
    assert capsys.readouterr().out == f"{path}: resuming after epoch 0\n"
    assert_same_run(again, first)
