"""Seeding, determinism and device choice for numpy and torch."""
from __future__ import annotations

import os

import numpy as np


def numpy_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def seed_torch(seed: int) -> None:
    """Seed torch and switch on deterministic algorithms (same params, same numbers)."""
    import torch

    # Needed by deterministic cuBLAS; harmless on the CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    # The same switch as torch.use_deterministic_algorithms(True), which would
    # also import torch._inductor (about 1.5 s per stage) only to configure
    # torch.compile, which nnlab never uses.
    torch._C._set_deterministic_algorithms(True, warn_only=False)
    # That switch also fills every new tensor with NaN, a check for kernels that read memory they
    # never wrote; none of ours do (two runs give byte-identical metrics, tested), and the fills
    # cost about a tenth of a CNN epoch.
    torch.utils.deterministic.fill_uninitialized_memory = False
    if hasattr(torch.backends, "cudnn"):
        torch.backends.cudnn.benchmark = False


def torch_device(name: str):
    """``auto`` picks CUDA when torch sees a GPU, else the CPU; ``cuda:N`` pins the N-th GPU."""
    import torch

    from nnlab.errors import ParamError
    from nnlab.params import DEVICE_PATTERN

    if not DEVICE_PATTERN.fullmatch(name):
        raise ParamError(f"train.device = {name!r}: must be auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device(name)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ParamError(f"train.device = {name!r}: torch sees no CUDA device here (use auto or cpu)")
    device = torch.device(name)
    if device.index is not None and device.index >= count:
        raise ParamError(f"train.device = {name!r}: torch sees {count} CUDA device(s), numbered from 0")
    return device
