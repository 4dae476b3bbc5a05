"""The committed metrics and plots are what the stages produce: a forced rerun of the cheap stages,
on the default params.yaml in a scratch folder, writes the same bytes.

The stages pin their float kernels (nnlab/kernels.py), so this holds on any x86-64 CPU with AVX2
where tests/test_kernel_probe.py passes;
with NNLAB_NATIVE_KERNELS=1 or on another CPU the test is skipped, since the bytes may differ there.
A failure means a code change that moved these outputs without a `dvc repro` committing them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, stage_python, venv_env
from nnlab import kernels
from test_dvc_deps import entry_path, expanded_stages, load_dvc_yaml

#: About 20 s in all on the stage server: the generated data, two numpy models and the separation
#: study, and two torch models on their default data: linear MNIST and an MRI MLP (a CNN on the
#: default slices trains for a minute; nnlab.kernel_probe's convolutions stand for it).
CHEAP_STAGES = ["generate", "perceptron", "evaluate_2d@perceptron", "mlp_moons", "evaluate_2d@mlp_moons",
                "separation", "mnist_data", "mnist_normalize", "mnist_torch", "mri_data", "mri_normalize",
                "mri_model@simple_nn2", "mri_evaluate@simple_nn2"]


def committed_outputs(stage: dict) -> list[str]:
    """The stage's files that git keeps: its metrics and its outs with ``cache: false``, folders listed."""
    paths = [entry_path(entry) for entry in stage.get("metrics", [])]
    paths += [entry_path(entry) for entry in stage.get("outs", [])
              if isinstance(entry, dict) and next(iter(entry.values())).get("cache") is False]
    files = []
    for path in paths:
        folder = ROOT / path
        files += sorted(str(f.relative_to(ROOT)) for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else [path]
    return files


@pytest.mark.skipif(kernels.choice(os.environ) != "pinned",
                    reason="the kernels are not pinned here (nnlab/kernels.py): the bytes may differ")
def test_a_forced_rerun_of_the_cheap_stages_writes_the_committed_metrics_and_plots(tmp_path):
    stages = expanded_stages(load_dvc_yaml())
    shutil.copy2(ROOT / "params.yaml", tmp_path)   # as written: a study runs its cases in the file's order
    expected = []
    for name in CHEAP_STAGES:
        _, _, module, *args = stages[name]["cmd"].split()   # python -m stages.<stage> [--model <model>]
        result = subprocess.run([stage_python(), "-m", module, *args],
                                cwd=tmp_path, env={**venv_env(), "PYTHONPATH": str(ROOT)}, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        expected += committed_outputs(stages[name])
    assert expected
    differing = [path for path in expected
                 if not (tmp_path / path).is_file() or (tmp_path / path).read_bytes() != (ROOT / path).read_bytes()]
    assert not differing, f"differ from the committed files (rerun `dvc repro` and commit them): {differing}"
    written = {str(f.relative_to(tmp_path)) for f in Path(tmp_path).rglob("*")
               if f.is_file() and f.parts[len(tmp_path.parts)] in ("metrics", "plots")}
    assert written == set(expected), f"written but not committed: {sorted(written - set(expected))}"
