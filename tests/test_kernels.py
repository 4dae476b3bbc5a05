"""Every stage process pins its float kernels (nnlab/kernels.py): the same bytes whatever kernels
the environment asks for, on any x86-64 CPU with AVX2.

A numpy stage, a torch MLP and a CNN run in fresh interpreters (not forks of the stage server,
which chose its kernels when it imported numpy and torch), one interpreter per kernel choice,
the three stages in turn as ``python -m`` runs them. Opted out (NNLAB_NATIVE_KERNELS=1), the
same choices give other weights: on this project's AMD EPYC (AVX2, no AVX-512), the kernels of
an x86-64 CPU without AVX change the bytes of all three models (OpenBLAS's move mlp_moons, ATen's
tanh_mlp, ATen's and oneDNN's the CNN).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_stage, tiny_params, venv_env
from nnlab import kernels
from test_other_kernels import NO_AVX_KERNELS, without_pinned_kernels

STAGES = [["stages.mlp_moons"], ["stages.tanh_mlp"], ["stages.mri_train", "--model", "cnn1"]]
MODELS = ["models/mlp_moons/weights.npz", "models/tanh_mlp/weights.npz", "models/mri_cnn1/weights.pt"]
OUTPUTS = [*MODELS, "plots/mlp_moons/history.csv", "plots/tanh_mlp/history.csv", "plots/mri_cnn1/history.csv"]
RUN_STAGES = """
import runpy, sys
for argv in {stages!r}:
    sys.argv = [*argv, "--params", "params.test.yaml"]
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
"""
#: What the AVX-512 kernels are asked for by, where the CPU has them (elsewhere they crash).
AVX512_KERNELS = {"OPENBLAS_CORETYPE": "SkylakeX", "ATEN_CPU_CAPABILITY": "avx512",
                  "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "MKL_CBWR": "AVX512"}
AVX512_FLAGS = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}

# Hardware: CI runs on whatever x86-64 it is given, so these may skip there too (skips_in_ci).
needs_avx2 = pytest.mark.skipif(kernels.choice({}) != "pinned",
                                reason="this CPU has no AVX2: nothing is pinned (nnlab/kernels.py)")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A folder holding the data the three stages read, as the data stages write it."""
    folder = tmp_path_factory.mktemp("kernels_data")
    (folder / "params.test.yaml").write_text(yaml.safe_dump(tiny_params()))
    for stage in ("generate", "mri_data", "mri_normalize"):
        result = run_stage(stage, tiny_params(), folder)
        assert result.returncode == 0, result.stderr
    return folder


def outputs(data: Path, folder: Path, environment: dict) -> dict[str, bytes]:
    """The three stages' outputs, run in one fresh interpreter whose environment adds ``environment``
    to this session's, without the kernel variables the session pinned."""
    shutil.copytree(data, folder)
    env = {**without_pinned_kernels(venv_env(stage_server=False)), "PYTHONPATH": str(ROOT), **environment}
    result = subprocess.run([sys.executable, "-c", RUN_STAGES.format(stages=STAGES)], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def in_turns(data: Path, tmp_path: Path, environments: dict[str, dict]) -> dict[str, dict[str, bytes]]:
    """:func:`outputs` of each named environment, two at a time (they wait for imports half the time)."""
    with ThreadPoolExecutor(2) as pool:
        runs = {name: pool.submit(outputs, data, tmp_path / name, environment)
                for name, environment in environments.items()}
        return {name: run.result() for name, run in runs.items()}


def differing(ours: dict[str, bytes], theirs: dict[str, bytes]) -> list[str]:
    return [name for name in ours if ours[name] != theirs[name]]


@pytest.mark.skips_in_ci
@needs_avx2
def test_the_pinned_kernels_give_the_same_bytes_whatever_kernels_the_environment_asks_for(data, tmp_path):
    runs = in_turns(data, tmp_path, {"own": {}, "no_avx": without_opt_out(NO_AVX_KERNELS),
                                     "no_avx_opted_out": NO_AVX_KERNELS})
    assert not differing(runs["own"], runs["no_avx"]), "the pin did not override the environment's kernels"
    # Else this test could not fail: the kernels asked for must change every model when not pinned.
    assert set(differing(runs["own"], runs["no_avx_opted_out"])) >= set(MODELS)


@pytest.mark.skips_in_ci
@needs_avx2
def test_the_pin_overrides_avx512_kernels_too(data, tmp_path):
    if not AVX512_FLAGS <= kernels.cpu_flags():
        pytest.skip("this CPU has no AVX-512: its kernels cannot be asked for here (they stop the process "
                    "with an illegal instruction)")
    runs = in_turns(data, tmp_path, {"own": {}, "avx512": AVX512_KERNELS,
                                     "avx512_opted_out": {**AVX512_KERNELS, kernels.OPT_OUT: "1"}})
    assert not differing(runs["own"], runs["avx512"])
    assert set(differing(runs["own"], runs["avx512_opted_out"])) >= set(MODELS)


def without_opt_out(environment: dict) -> dict:
    return {name: value for name, value in environment.items() if name != kernels.OPT_OUT}


AVX2_CPU = frozenset(kernels.AVX2_FLAGS | {"sse4_2"})


def test_pin_sets_every_kernel_variable_over_the_users_own_and_drops_contradicting_ones():
    environ = {"ATEN_CPU_CAPABILITY": "default", "NPY_DISABLE_CPU_FEATURES": "X86_V3", "HOME": "/home/me"}
    assert kernels.pin(environ, AVX2_CPU) == "pinned"
    assert environ == {**kernels.PINNED, "HOME": "/home/me"}


@pytest.mark.parametrize("switch", ["1", "yes"])
def test_the_opt_out_leaves_the_environment_as_it_is(switch):
    environ = {kernels.OPT_OUT: switch, "ATEN_CPU_CAPABILITY": "default", "NPY_DISABLE_CPU_FEATURES": "X86_V3"}
    assert kernels.pin(environ, AVX2_CPU) == "opted out"
    assert environ == {kernels.OPT_OUT: switch, "ATEN_CPU_CAPABILITY": "default", "NPY_DISABLE_CPU_FEATURES": "X86_V3"}


def test_nothing_is_pinned_on_a_cpu_without_avx2(monkeypatch):
    # The AVX2 kernels would stop such a process with an illegal instruction, and numpy refuses X86_V3.
    environ = {kernels.OPT_OUT: "0"}
    assert kernels.pin(environ, AVX2_CPU - {"avx2"}) == "no AVX2"
    monkeypatch.setattr(kernels.platform, "machine", lambda: "aarch64")
    assert kernels.pin(environ, AVX2_CPU) == "no AVX2"
    assert environ == {kernels.OPT_OUT: "0"}


def test_this_session_and_so_its_stage_server_compute_with_the_pinned_kernels():
    """tests/conftest.py imports nnlab before anything imports numpy or torch, and starts the stage
    server in the environment that pinned, so a fork computes as a plain stage process does."""
    if kernels.choice(os.environ) != "pinned":
        pytest.skip(f"this session runs with {kernels.choice(os.environ)!r} kernels")
    assert {name: os.environ.get(name) for name in kernels.PINNED} == kernels.PINNED
    assert kernels.in_effect() == {"openblas": "libscipy_openblas: Haswell", "numpy_loops": "X86_V3", "aten": "AVX2",
                                   "convolutions": "ATen unfold + MKL"}
