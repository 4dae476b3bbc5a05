"""The MRI stages' memory is bounded by the batch, not by the data: on normalised arrays several
times larger than the default's, a validation run, the refit on train and validation together and
the evaluation of the model add a few batches' worth to the process's peak resident memory, never
the arrays (measured in a process of its own; docs/real-data.md has the figures on the real set)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, venv_env
from nnlab.checkpoint import data_digest
from nnlab.datasets import mri
from nnlab.errors import DataError
from nnlab.torch_train import EVAL_BATCH_SIZE, StackedRows

SLICE = (1, 128, 128)                        # 64 KiB a slice
ROWS = {"train": 3600, "validation": 900, "test": 300}   # 300 MiB of arrays in all
BATCH = 50

# The stage's path through the library (glibc's freed blocks returned, as the stages have it): the data digest of each run's checkpoint, the validation
# run, the refit, the checkpoints and the scoring of train and test. The baseline is the peak after a
# first run on 100 slices, so that torch's own start-up and the model's size are not counted.
PROBE = """
import json, sys
from nnlab import memory
from nnlab.cli import peak_memory_mib
from nnlab.checkpoint import Checkpoint
from nnlab.datasets import mri
from nnlab.models import mri_nets
from nnlab.torch_train import ArrayDataset, run_metrics
import torch

memory.return_freed_blocks()   # as the stages do
splits, info = mri.normalized_datasets(sys.argv[1])
train, validation, test = splits["train"], splits["validation"], splits["test"]
options = dict(seed=0, device=torch.device("cpu"), epochs=1, batch_size=int(sys.argv[3]), lr=0.01)
small = ArrayDataset(train.features[:100], train.labels[:100])
mri_nets.fit_and_refit("simple_nn2", small, small, small, refit=True, checkpoints=(None, None), **options)
before = peak_memory_mib()
checkpoints = tuple(Checkpoint(f"{sys.argv[2]}/{name}.pt") for name in ("validation_run", "final_run"))
model, result = mri_nets.fit_and_refit("simple_nn2", train, validation, test, refit=True,
                                       checkpoints=checkpoints, **options)
run_metrics(model, result, train, test, info["class_names"], torch.device("cpu"), info["source"])
print(json.dumps({"added_mib": peak_memory_mib() - before, "trained": result.trained}))
"""


def write_normalized(directory, rng) -> int:
    """Random standardised slices and labels in the layout of data/mri/normalized; their bytes."""
    directory.mkdir()
    total = 0
    for split, n in ROWS.items():
        with open(directory / f"{split}_x.npy", "wb") as handle:   # a chunk at a time: not in this process either
            np.lib.format.write_array_header_2_0(handle, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (n, *SLICE)})
            for start in range(0, n, 300):
                rng.standard_normal((min(300, n - start), *SLICE), dtype=np.float32).tofile(handle)
        np.save(directory / f"{split}_y.npy", rng.integers(0, len(mri.CLASS_NAMES), n))
        total += n * int(np.prod(SLICE)) * 4
    (directory / "info.json").write_text(json.dumps({"source": "synthetic", "description": "random slices",
                                                     "class_names": list(mri.CLASS_NAMES), "channels": 1}))
    return total


def test_training_refit_and_evaluation_hold_a_few_batches_not_the_arrays(tmp_path):
    data_bytes = write_normalized(tmp_path / "normalized", np.random.default_rng(0))
    result = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "normalized"), str(tmp_path), str(BATCH)],
                            cwd=ROOT, env={**venv_env(stage_server=False), "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    probe = json.loads(result.stdout.splitlines()[-1])
    assert probe["trained"] == 1
    # The largest batch (BATCH or EVAL_BATCH_SIZE slices) is 3 MiB here. Mapped or concatenated
    # arrays would add 300 to 600 MiB.
    batch_mib = max(BATCH, EVAL_BATCH_SIZE) * np.prod(SLICE) * 4 / 2**20
    assert probe["added_mib"] < 5 * batch_mib < data_bytes / 2**20 / 10, (probe, batch_mib, data_bytes)


def test_rows_read_from_a_file_are_those_numpy_loads(tmp_path):
    rng = np.random.default_rng(1)
    array = rng.standard_normal((20, 2, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", array)
    rows = mri.open_arrays(tmp_path, ("a",))["a"]
    assert rows.shape == array.shape and rows.dtype == array.dtype and len(rows) == 20
    for key in ([3, 4, 5, 9, 1], [], slice(2, 17), slice(None), 7):
        np.testing.assert_array_equal(rows[key], array[key])
    np.testing.assert_array_equal(np.asarray(rows, dtype=np.float64), array)


def test_stacked_rows_are_those_of_the_concatenation():
    parts = [np.arange(30, dtype=np.float32).reshape(10, 3), np.arange(30, 45, dtype=np.float32).reshape(5, 3)]
    stacked, whole = StackedRows(*parts), np.concatenate(parts)
    assert stacked.shape == whole.shape and data_digest(stacked) == data_digest(whole)
    for key in ([14, 0, 9, 10, 3], [], slice(8, 12), slice(None)):
        np.testing.assert_array_equal(stacked[key], whole[key])
    with pytest.raises(IndexError):
        stacked[[15]]


def test_a_truncated_array_file_is_one_line_naming_it(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((10, 4), dtype=np.float32))
    (tmp_path / "a.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:-8])
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path / 'a.npy'))}: cannot read \(truncated"):
        mri.open_arrays(tmp_path, ("a",))
