"""The tests marked ``numerics`` once more under the kernels another x86-64 CPU would get.

numpy's OpenBLAS and torch's ATen and oneDNN pick their kernels per CPU, so float sums
come out in another order elsewhere. These variables force what an AVX2 machine picks; the
tolerances in tests/tolerances.py must hold there too. The rerun is one test of `make test`,
so pytest-xdist fits it beside the others instead of after them.
"""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

OTHER_KERNELS = {"OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_numerics_tests_pass_under_other_kernels(tmp_path):
    # Without pytest-xdist's variables the inner run is a session of its own, in its own folder, with
    # a stage server of its own (tests/stage_server.py), which imports torch under these kernels.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_XDIST", "NNLAB_STAGE"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-m", "numerics", "--basetemp",
         str(tmp_path / "run"), str(ROOT / "tests")],
        cwd=ROOT, env={**env, **OTHER_KERNELS}, capture_output=True, text=True, timeout=600)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
