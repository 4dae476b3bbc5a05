"""The torch stages' float operations give the committed bytes on the CPU this suite runs on.

``nnlab.kernel_probe`` runs each operation the torch stages use under the pinned kernels and
hashes what it returns; ``tests/kernel_hashes.json`` holds the hashes of the machine that made
the committed outputs. The suite runs on whatever x86-64 machine it gets (AMD EPYC with AVX2 and
Intel Xeon with AVX-512 so far), so each run checks the claim of nnlab/kernels.py on one more
CPU, and a failure names the operation and the CPU where it does not hold.

After a change to the probe itself: ``python -m nnlab.kernel_probe --write tests/kernel_hashes.json``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, venv_env
from nnlab import kernel_probe, kernels

COMMITTED = ROOT / "tests" / "kernel_hashes.json"


def probe_hashes(environment: dict) -> dict[str, str]:
    """`python -m nnlab.kernel_probe`'s hashes, in a fresh interpreter whose environment adds ``environment``."""
    result = subprocess.run([sys.executable, "-m", "nnlab.kernel_probe"], cwd=ROOT, capture_output=True, text=True,
                            env={**venv_env(stage_server=False), "PYTHONPATH": str(ROOT), **environment}, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(kernels.choice(os.environ) != "pinned",
                    reason="the kernels are not pinned here (nnlab/kernels.py): the bytes may differ")
def test_every_torch_operation_hashes_as_on_the_machine_that_made_the_committed_outputs():
    here, committed = probe_hashes({}), json.loads(COMMITTED.read_text())
    assert set(here) == set(committed), "the probe's operations changed: regenerate tests/kernel_hashes.json"
    differing = [name for name in committed if here[name] != committed[name]]
    assert not differing, "\n".join(f"{name}: other bytes on {kernel_probe.cpu_model()}" for name in differing)


def test_the_probe_sees_a_change_of_kernels():
    """Opted out, with MKL's SSE4.2 branch and torch's own choice of oneDNN for convolutions, the
    products and convolutions hash otherwise: the probe can fail."""
    other = probe_hashes({kernels.OPT_OUT: "1", **kernels.PINNED, "MKL_CBWR": "SSE4_2"})
    committed = json.loads(COMMITTED.read_text())
    changed = {name for name in committed if other[name] != committed[name]}
    assert {"linear mnist batch (100x784 -> 10)", "conv2d 3x3 padded (cnn_improved)"} <= changed, changed
    assert "max_pool2d" not in changed   # ATen's own loop, the same under every branch
