"""What a stage's parameters will ask of the memory, checked before anything large is allocated.

A size parameter has no upper bound of its own (a wider net, more samples, a
longer run are all legitimate), but a typo such as ``hidden_units: 10000000``
used to grow until the kernel's OOM killer ended the stage, freezing a laptop
on the way. So every stage, once its params are parsed and before it reads or
allocates its data, adds up what they will need::

    memory.check(memory.numpy_mlp(cfg, "hidden_units", sizes, rows=800),
                 memory.history(cfg, "steps", steps // eval_every + 1))

and :func:`check` refuses, in one line naming the parameter behind the largest
part, a total above the budget: by default 80 % of the memory this process may
still take, the least of the kernel's ``MemAvailable``, the cgroup's limit and
``RLIMIT_AS`` (``ulimit -v``). ``NNLAB_MEMORY_BUDGET`` sets another share
(``50%``) or a size (``6GiB``, ``800MB``). The budget is a property of the
machine, not of an experiment, so it is not a parameter of params.yaml, where
changing it would make DVC rerun every stage.

The estimates count the arrays a stage holds at once: data, weights with their
gradients and optimizer state, the activations of the largest batch it scores,
the history it keeps. They are meant to be right within a small factor, which
is all a refusal of a typo needs; a run near the budget can be let through
with a larger ``NNLAB_MEMORY_BUDGET``.
"""
from __future__ import annotations

import ctypes
import math
import os
import re
import resource
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from nnlab.errors import DataError, ParamError
from nnlab.params import Section

BUDGET_VARIABLE = "NNLAB_MEMORY_BUDGET"
DEFAULT_SHARE = 0.8
#: A history row (a dict of half a dozen floats, then a table row and a CSV line).
HISTORY_ROW_BYTES = 1024
#: A worker process of joblib (an interpreter with numpy, scikit-learn and, for training, torch).
WORKER_BYTES = 300 * 2**20
#: A generated 2-D point: coordinates and label, the split's copies, a scatter plot's.
POINT_BYTES = 240
#: mallopt's parameter number for the mmap threshold (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


@dataclass(frozen=True)
class Need:
    """``size`` bytes, for ``what``, which the value of ``key`` in ``section`` decides (with ``section``
    None, ``key`` is the input file whose size decides)."""

    section: Section | None
    key: str
    size: float
    what: str


def return_freed_blocks() -> None:
    """Have glibc's malloc give every freed block of 1 MiB or more back to the system.

    glibc maps a large block on its own and unmaps it when freed, but each such free raises its
    threshold for "large" (up to 32 MiB), so the batch-sized temporaries of a training step come
    from the heap from then on, where freed ones stay in the process. Over a run of CNN1 on the
    real slices that held 80 to 100 MB more at the peak (docs/real-data.md). A fixed threshold
    ends the raising. No effect where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 2**20)


def gib(size: float) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> int | None:
    """What ``RLIMIT_AS`` leaves beside the address space this process already maps."""
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        status = Path("/proc/self/status").read_text()
        mapped = int(re.search(r"^VmSize:\s+(\d+) kB", status, re.M).group(1)) * 1024
    except (OSError, AttributeError):
        mapped = 0
    return max(limit - mapped, 0)


def available() -> tuple[int, str]:
    """The bytes this process may still allocate, and which limit says so."""
    candidates = []
    meminfo = _meminfo_available()
    if meminfo is not None:
        candidates.append((meminfo, "MemAvailable"))
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            candidates.append((max(limit - usage, 0), "the cgroup's memory limit"))
            break
    address_space = _address_space_left()
    if address_space is not None:
        candidates.append((address_space, "RLIMIT_AS"))
    if not candidates:
        return 2**63, "no known limit"
    return min(candidates)


def budget() -> tuple[int, str]:
    """The bytes a stage may plan to use, and how that figure came about."""
    setting = os.environ.get(BUDGET_VARIABLE, "").strip()
    free, source = available()
    if not setting:
        share = DEFAULT_SHARE
    else:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(%|[kmgt]i?)?b?", setting, re.I)
        if match is None or float(match.group(1)) <= 0:
            raise ParamError(f"{BUDGET_VARIABLE} = {setting!r}: must be a share of the available memory such as "
                             f"80% or a size such as 6GiB")
        number, unit = float(match.group(1)), (match.group(2) or "").lower()
        if unit != "%":
            return int(number * _UNITS[unit]), f"{BUDGET_VARIABLE} = {setting}"
        share = number / 100
    return int(share * free), f"{share:.0%} of the {gib(free)} available ({source}; {BUDGET_VARIABLE} changes it)"


def check(*needs: Need | tuple[Need, ...]) -> None:
    """Refuse the run, naming the parameter behind its largest part, if ``needs`` exceed the budget."""
    needs = [need for part in needs for need in (part if isinstance(part, tuple) else (part,))]
    total = sum(need.size for need in needs)
    limit, how = budget()
    if total <= limit:
        return
    largest = max(needs, key=lambda need: need.size)
    why = (f"needs about {gib(total)} of memory, {gib(largest.size)} of it for {largest.what}; "
           f"the budget is {gib(limit)}, {how}")
    if largest.section is None:
        raise DataError(f"{largest.key}: {why}")
    raise largest.section.refuse(largest.key, why)


# -- what the parts cost ----------------------------------------------------------------------

def history(section: Section, key: str, rows: float, copies: int = 1) -> Need:
    """``rows`` history rows kept until the end of the run (``copies`` runs of them)."""
    return Need(section, key, rows * copies * HISTORY_ROW_BYTES, f"a history of {rows * copies:,.0f} rows")


def workers(section: Section, key: str, n: int) -> Need:
    """``n`` worker processes side by side."""
    return Need(section, key, n * WORKER_BYTES, f"{n:,} worker processes")


def file_copies(path: str | Path, copies: float, what: str) -> Need:
    """``copies`` of the content of the input file at ``path`` (nothing when it cannot be read)."""
    try:
        size = Path(path).stat().st_size
    except OSError:
        size = 0
    return Need(None, str(path), size * copies, what)


def points(section: Section, key: str, n: float) -> Need:
    """``n`` generated 2-D points (:mod:`nnlab.datasets.synthetic`)."""
    return Need(section, key, n * POINT_BYTES, f"{n:,.0f} points")


def array(section: Section, key: str, shape, itemsize: int, what: str, copies: float = 1) -> Need:
    """``copies`` arrays of ``shape``."""
    return Need(section, key, math.prod(shape) * itemsize * copies, what)


def numpy_mlp(section: Section, key: str, sizes, rows: int) -> Need:
    """A float64 MLP of :mod:`nnlab.nn` scoring ``rows`` samples at once: weights, their gradients and
    a copy in the model file; every layer keeps its input, output and (in training) gradient."""
    weights = sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    activations = rows * sum(sizes[1:])
    return Need(section, key, 8 * (3 * weights + 3 * activations),
                f"{weights:,} weights and the activations of {rows:,} samples")


def tanh_mlp(section: Section, key: str, *, inputs: int, hidden: int, classes: int, runs: int,
             rows: int) -> Need:
    """:mod:`nnlab.models.tanh_mlp` trained at ``runs`` learning rates at once: float32 parameters and
    gradients, and a float64 scoring of ``rows`` samples (pre-activations, activations, a copy)."""
    weights = runs * (hidden * (inputs + classes + 1) + classes)
    activations = runs * rows * (hidden + classes)
    return Need(section, key, 4 * 3 * weights + 8 * 3 * weights + 8 * 3 * activations,
                f"{hidden:,} hidden units scoring {rows:,} samples" + (f", {runs} runs at once" if runs > 1 else ""))


def torch_net(weights_key: tuple[Section | None, str], batch_key: tuple[Section, str], build: Callable[[], "object"],
              *, batch: int, eval_batch: int, optimizer_slots: int, sample_shape: tuple[int, ...] = (),
              layer_widths: list[int] | None = None, copies: int = 1) -> tuple[Need, Need]:
    """A torch network built by ``build`` on the meta device (no memory), ``copies`` of it at once:
    float32 weights, gradients, a saved copy and ``optimizer_slots`` optimizer tensors each (the
    part the ``(section, key)`` ``weights_key`` decides), and activations (``batch_key``). Training
    keeps every layer's output for a ``batch`` of samples, and autograd a gradient of each; scoring
    without gradients holds two layers' outputs for ``eval_batch`` samples at a time. The outputs
    per sample come from a dry run of one ``sample_shape`` input, or are given as ``layer_widths``."""
    import torch

    with torch.device("meta"):
        model = build()
        weights = sum(parameter.numel() for parameter in model.parameters())
        if layer_widths is None:
            layer_widths = []
            hooks = [module.register_forward_hook(lambda _, __, out: layer_widths.append(out.numel()))
                     for module in model.modules() if not list(module.children())]
            with torch.no_grad():
                model.eval()(torch.zeros(1, *sample_shape))
            for hook in hooks:
                hook.remove()
    activations = max(2 * batch * sum(layer_widths), 2 * eval_batch * max(layer_widths, default=0))
    return (Need(*weights_key, 4 * (3 + optimizer_slots) * weights * copies, f"{weights * copies:,} weights"),
            Need(*batch_key, 4 * activations * copies,
                 f"the activations of training batches of {batch:,} and scoring batches of {eval_batch:,}"))


# -- the sizes of inputs, from their headers ------------------------------------------------------

def _header(handle) -> tuple[int, ...]:
    version = np.lib.format.read_magic(handle)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return reader(handle)[0]


def npz_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """``{array name: shape}`` of an ``.npz`` (``{}`` when it cannot be read: reading the data then says
    why), from the headers alone."""
    shapes = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                with archive.open(name) as handle:
                    shapes[name.removesuffix(".npy")] = _header(handle)
    except (OSError, ValueError, zipfile.BadZipFile):
        return {}
    return shapes


def first_dimension(path: str | Path, *names: str) -> int:
    """The most rows any of ``names`` has in the ``.npz`` at ``path`` (0 when it cannot be read)."""
    shapes = npz_shapes(path)
    return max((shapes[name][0] for name in names if shapes.get(name)), default=0)


def sparse_columns(path: str | Path) -> int:
    """The columns of a scipy sparse ``.npz`` matrix, read from its small ``shape`` array (0 when it
    cannot be read)."""
    try:
        with np.load(path) as archive:
            return int(archive["shape"][1])
    except (OSError, ValueError, KeyError, IndexError):
        return 0


def npy_shape(path: str | Path) -> tuple[int, ...] | None:
    """The shape of an ``.npy`` from its header; None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return _header(handle)
    except (OSError, ValueError):
        return None
