"""The tests marked ``numerics`` once more under the kernels another x86-64 CPU would get.

Every stage and this test session compute with the AVX2 kernels that nnlab/kernels.py pins,
but a user who opts out (NNLAB_NATIVE_KERNELS=1), or whose CPU has no AVX2, gets the kernels
their CPU picks: OpenBLAS, numpy's loops and torch's ATen, oneDNN and MKL sum floats in another
order there. The rerun opts out and asks for the kernels of an x86-64 CPU without AVX, the
furthest from the pinned ones that runs here; the tolerances in tests/tolerances.py must hold
there too. The rerun is one test of `make test`, so pytest-xdist fits it beside the others
instead of after them.
"""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT
from nnlab.kernels import OPT_OUT, PINNED

#: The kernels of an x86-64 CPU with SSE4.2 but no AVX (x86-64-v2), asked for with the pin off.
NO_AVX_KERNELS = {OPT_OUT: "1", "OPENBLAS_CORETYPE": "Nehalem", "NPY_DISABLE_CPU_FEATURES": "X86_V3",
                  "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "SSE4_2"}


def without_pinned_kernels(environ) -> dict:
    """``environ`` without the kernel variables nnlab/kernels.py pinned in this session, and without its
    opt-out: a process started with it chooses as if the user had asked for nothing."""
    return {key: value for key, value in environ.items() if key not in PINNED and key != OPT_OUT}


def test_numerics_tests_pass_under_other_kernels(tmp_path):
    # Without pytest-xdist's variables the inner run is a session of its own, in its own folder, with
    # a stage server of its own (tests/stage_server.py), which imports torch under these kernels.
    env = {key: value for key, value in without_pinned_kernels(os.environ).items()
           if not key.startswith(("PYTEST_XDIST", "NNLAB_STAGE"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-m", "numerics", "--basetemp",
         str(tmp_path / "run"), str(ROOT / "tests")],
        cwd=ROOT, env={**env, **NO_AVX_KERNELS}, capture_output=True, text=True, timeout=600)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
