"""The same float kernels, hence the same output bytes, on any x86-64 CPU with AVX2, Intel or AMD.

numpy's and scipy's OpenBLAS, numpy's own SIMD loops and torch's ATen, oneDNN, NNPACK and MKL
each pick the fastest kernels of the CPU they load on, and some block their loops by its cache
sizes: on another CPU they sum floats in another order, so a seeded run ends with other last
digits. :func:`pin` chooses, for every library, kernels whose order of operations is fixed
whatever the CPU (docs/speed.md says why each choice holds):

- numpy's and scipy's OpenBLAS and numpy's loops: their AVX2 kernels, by environment variables
  they read once, when they load;
- torch's matrix products (and the MKL vector maths behind tanh, sigmoid and Adam's square
  root): MKL's ``COMPATIBLE`` branch, the one MKL keeps reproducible on Intel and AMD CPUs
  alike (its ``AVX2`` branch holds on Intel CPUs only: on AMD, MKL falls back to its
  CPU-tuned default);
- torch's convolutions: neither oneDNN nor NNPACK, which size their blocks by the CPU's caches,
  but ATen's own unfold and an MKL product; ATen's vectorised operators: their AVX2 build.
  The two torch switches are not environment variables, so :func:`pin` sets them when torch
  loads (at once, where it already has).

So :func:`pin` must run before numpy or torch is imported: ``nnlab/__init__.py`` calls it and
``stages/__init__.py`` imports nnlab before anything else, so every ``python -m stages.…`` and
``python -m nnlab.…`` process computes with these kernels. ``nnlab.kernel_probe`` hashes every
operation the torch stages use, and a test compares the hashes with the committed ones on each
CPU the suite runs on.

A user's own settings of these variables are overridden: the point is the same bytes. One
switch opts out: with ``NNLAB_NATIVE_KERNELS=1`` the environment is left as it is, so the
libraries pick the machine's fastest kernels (or the user's variables), and the outputs then
differ from the committed ones in their last digits (docs/speed.md says how much). A CPU without
AVX2 (ARM, an old x86-64) cannot run the AVX2 kernels: nothing is pinned there, with the same
consequence.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import platform
import sys
from typing import MutableMapping

#: The opt-out switch: ``1`` keeps the machine's (or the user's) own kernels.
OPT_OUT = "NNLAB_NATIVE_KERNELS"

PINNED = {
    "OPENBLAS_CORETYPE": "Haswell",        # numpy's and scipy's OpenBLAS: its AVX2 kernels
    "NPY_ENABLE_CPU_FEATURES": "X86_V3",   # numpy's own loops (exp, tanh, log, ...): AVX2, not AVX-512
    "ATEN_CPU_CAPABILITY": "avx2",         # torch's vectorised CPU operators
    "ONEDNN_MAX_CPU_ISA": "AVX2",          # oneDNN, wherever torch still reaches it
    "MKL_CBWR": "COMPATIBLE",              # torch's matrix products: MKL's branch reproducible on any vendor
}

#: Settings that contradict the pinned ones, removed with them: numpy refuses to start with both
#: its enable and disable lists, and MKL's instruction cap is its other way to choose a branch.
CONTRADICTING = ("NPY_DISABLE_CPU_FEATURES", "MKL_ENABLE_INSTRUCTIONS")

#: x86-64-v3 (AVX2, FMA, BMI1/2, LZCNT, F16C, MOVBE) as /proc/cpuinfo names it: what every pinned
#: kernel may use, and what numpy's X86_V3 demands (it refuses to start on a CPU without).
AVX2_FLAGS = frozenset({"avx", "avx2", "fma", "bmi1", "bmi2", "abm", "f16c", "movbe"})


def cpu_flags() -> frozenset[str]:
    """The first processor's feature flags (none where /proc/cpuinfo is absent: not Linux)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def choice(environ: MutableMapping[str, str], flags: frozenset[str] | None = None) -> str:
    """Why the kernels are what they are: ``pinned``, ``opted out`` or ``no AVX2``."""
    if environ.get(OPT_OUT, "") not in ("", "0"):
        return "opted out"
    if platform.machine().lower() not in ("x86_64", "amd64") or not AVX2_FLAGS <= (
            cpu_flags() if flags is None else flags):
        return "no AVX2"
    return "pinned"


def pin(environ: MutableMapping[str, str] = os.environ, flags: frozenset[str] | None = None) -> str:
    """Set the pinned kernels in ``environ`` unless opted out or impossible; returns :func:`choice`."""
    why = choice(environ, flags)
    if why == "pinned":
        for name in CONTRADICTING:
            environ.pop(name, None)
        environ.update(PINNED)
        _when_torch_loads(pin_torch)
    return why


def pin_torch(torch) -> None:
    """Convolutions through ATen's unfold and MKL's product, not oneDNN or NNPACK (cache-blocked)."""
    torch._C._set_mkldnn_enabled(False)
    torch._C._set_nnpack_enabled(False)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``action(module)`` once ``name`` has been imported, whoever imports it."""

    def __init__(self, name: str, action) -> None:
        self.name, self.action = name, action

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module) -> None:
            execute(module)
            self.action(module)

        spec.loader.exec_module = exec_module
        return spec


def _when_torch_loads(action) -> None:
    if "torch" in sys.modules:
        action(sys.modules["torch"])
    elif not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("torch", action))


def in_effect() -> dict[str, str]:
    """The kernels this process computes with, as numpy, OpenBLAS and torch report them (MKL reports
    its branch only in verbose logs)."""
    import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS, which the pin reaches too)
    import torch
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__   # what np.show_runtime reads
    from threadpoolctl import threadpool_info

    blas = sorted({f"{info['prefix']}: {info.get('architecture')}" for info in threadpool_info()
                   if info["internal_api"] == "openblas"})
    return {"openblas": ", ".join(blas),
            "numpy_loops": " ".join(name for name in __cpu_dispatch__ if __cpu_features__[name]) or "baseline",
            "aten": torch.backends.cpu.get_cpu_capability(),
            "convolutions": "oneDNN" if torch._C._get_mkldnn_enabled() else
                            "NNPACK" if torch._C._get_nnpack_enabled() else "ATen unfold + MKL"}

