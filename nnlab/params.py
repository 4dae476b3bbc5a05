"""Typed, validated access to ``params.yaml``.

Each stage reads only its own section::

    params = load_params(args.params)
    cfg = params.section("mlp_moons")
    hidden = cfg.int_list("hidden_units")          # "64,32" -> [64, 32]
    lr = learning_rate(params, cfg)                # section lr, else train.lr
    cfg.check_all_used()                           # unknown keys are errors

Every problem is a :class:`~nnlab.errors.ParamError` whose message names the
file, the dotted key and the offending value, e.g.
``params.yaml: mlp_moons.lr = -1: must be > 0``.
"""
from __future__ import annotations

import copy
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from nnlab.errors import ParamError

_MISSING = object()


#: The top-level sections of params.yaml that some stage reads (tests hold this to dvc.yaml's
#: `params:` lists). Any other section is a typo or a leftover, refused by every stage.
SECTIONS = frozenset({
    "train", "data", "generate", "preprocess",
    "perceptron", "separation", "mlp_moons", "batch_study", "bce_moons", "tanh_mlp", "tanh_grid",
    "mnist_normalize", "mnist_linear", "mnist_torch", "mnist_grid", "mnist_train_size",
    "imdb_train", "imdb_study", "imdb_tuned", "imdb_logreg",
    "mri_normalize", "mri_simple_nn1", "mri_simple_nn2", "mri_cnn1", "mri_cnn_improved",
    "mri_lr_study", "mri_batch_study", "mri_nearest",
})
#: `train.device`: auto (CUDA when torch sees one), cpu, cuda, or cuda:N for the N-th GPU.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


#: How much of a value a one-line error shows: a value can be a list of thousands of items.
SHOWN_VALUE_CHARS = 80


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`SHOWN_VALUE_CHARS` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else f"{text[:SHOWN_VALUE_CHARS - 1]}…"


class _Refused(Exception):
    """What :class:`_StrictLoader` refuses, with the line it refuses."""


class _StrictLoader(yaml.SafeLoader):
    """YAML as DVC reads params.yaml, and no more: a key twice in one mapping is refused (DVC refuses
    it too, where PyYAML would keep the last), and so is an alias, whose nested expansion can take
    the machine's memory and time before any check sees the value."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(f"a YAML alias (*{event.anchor}) at line {event.start_mark.line + 1}: "
                           "params files take plain values")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        lines: dict = {}
        for key_node, _ in node.value:
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in lines:
                    raise _Refused(f"duplicate key {shown(key)} (lines {lines[key]} and {line})")
                lines[key] = line
            except TypeError:   # an unhashable key: construct_mapping names it
                continue
        return super().construct_mapping(node, deep)


def load_params(path: str | Path, *, sections: frozenset[str] | None = SECTIONS) -> "Section":
    """Read a params file and return its root as a :class:`Section`.

    Every stage refuses a top-level section outside ``sections`` (None: no check) and
    any bad key or value in the shared ``train`` section, whichever parts it reads.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except _Refused as exc:
        raise ParamError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ParamError(f"{path}: not valid YAML{line}") from None
    if not isinstance(data, dict):
        raise ParamError(f"{path}: expected a mapping of sections at the top level")
    unknown = [name for name in data if sections is not None and name not in sections]
    if unknown:
        raise ParamError(f"{path}: unknown section {unknown[0]} (sections: {', '.join(sorted(sections))})")
    root = Section(data, file=str(path), prefix="")
    if "train" in data:
        train_settings(root)
    return root


class Section:
    """One mapping of params.yaml, with typed getters that validate."""

    def __init__(self, data: dict, *, file: str, prefix: str):
        self._data = data
        self._file = file
        self._prefix = prefix
        self._used: set[str] = set()

    # -- navigation ---------------------------------------------------------
    def key_path(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def fail(self, key: str, value: Any, why: str) -> ParamError:
        """Build the one-line error for ``key`` (raise the result)."""
        return ParamError(f"{self._file}: {self.key_path(key)} = {shown(value)}: {why}")

    def refuse(self, key: str, why: str) -> ParamError:
        """:meth:`fail` with the value as params.yaml holds it (raise the result)."""
        return self.fail(key, self._data.get(key), why)

    def keys(self) -> list[str]:
        return list(self._data)

    def as_dict(self) -> dict:
        """The section's values as read, for a stage that passes them on whole (the report)."""
        return copy.deepcopy(self._data)

    def section(self, key: str) -> "Section":
        value = self._raw(key)
        if not isinstance(value, dict):
            raise self.fail(key, value, "must be a mapping of parameters")
        return Section(value, file=self._file, prefix=self.key_path(key))

    def _raw(self, key: str, default: Any = _MISSING) -> Any:
        self._used.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise ParamError(f"{self._file}: {self.key_path(key)} is missing")
            return default
        return self._data[key]

    def check_all_used(self) -> None:
        """Reject keys the stage never read: they are typos or stale params."""
        unknown = [k for k in self._data if k not in self._used]
        if unknown:
            raise ParamError(
                f"{self._file}: unknown key {self.key_path(unknown[0])!s}"
                f" (this section takes: {', '.join(sorted(self._used))})"
            )

    # -- typed getters ------------------------------------------------------
    def int(self, key: str, *, min: int | None = None, max: int | None = None,
            default: Any = _MISSING) -> int:
        value = self._raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise self.fail(key, value, "must be an integer")
        _check_range(self, key, value, min, max)
        return value

    def float(self, key: str, *, min: float | None = None, max: float | None = None,
              positive: bool = False, default: Any = _MISSING) -> float:
        value = self._raw(key, default)
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as a number.
            try:
                value = float(value)
            except ValueError:
                raise self.fail(key, value, "must be a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, value, "must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise self.fail(key, value, "must be finite")
        if positive and value <= 0:
            raise self.fail(key, value, "must be > 0")
        _check_range(self, key, value, min, max)
        return value

    def optional_int(self, key: str, **kwargs) -> int | None:
        if self._raw(key, None) is None:
            return None
        return self.int(key, **kwargs)

    def optional_float(self, key: str, **kwargs) -> float | None:
        if self._raw(key, None) is None:
            return None
        return self.float(key, **kwargs)

    def bool(self, key: str, *, default: Any = _MISSING) -> bool:
        value = self._raw(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, value, "must be true or false")
        return value

    def str(self, key: str, *, choices: Iterable[str] | None = None,
            default: Any = _MISSING) -> str:
        value = self._raw(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(key, value, "must be a non-empty string")
        if choices is not None and value not in choices:
            raise self.fail(key, value, f"must be one of {', '.join(choices)}")
        return value

    def optional_str(self, key: str, **kwargs) -> str | None:
        if self._raw(key, None) is None:
            return None
        return self.str(key, **kwargs)

    def int_list(self, key: str, *, min: int | None = 1) -> list[int]:
        """A list of integers written as ``"64,32"``, ``[64, 32]`` or ``20``."""
        value = self._raw(key)
        if isinstance(value, bool):
            raise self.fail(key, value, "must be integers separated by commas")
        if isinstance(value, int):
            items: list[Any] = [value]
        elif isinstance(value, str):
            items = [part.strip() for part in value.split(",")]
        elif isinstance(value, list):
            items = value
        else:
            raise self.fail(key, value, "must be integers separated by commas")
        result = []
        for item in items:
            try:
                if isinstance(item, bool) or (isinstance(item, float) and not item.is_integer()):
                    raise ValueError
                number = int(item)
            except (TypeError, ValueError):
                raise self.fail(key, value, f"{shown(item)} is not an integer") from None
            if min is not None and number < min:
                raise self.fail(key, value, f"every entry must be >= {min}")
            result.append(number)
        if not result:
            raise self.fail(key, value, "must hold at least one integer")
        return result

    def float_list(self, key: str, *, positive: bool = False) -> list[float]:
        value = self._raw(key)
        items = value if isinstance(value, list) else [value]
        result = []
        for item in items:
            try:
                if isinstance(item, bool):
                    raise ValueError
                number = float(item)
            except (TypeError, ValueError):
                raise self.fail(key, value, f"{shown(item)} is not a number") from None
            if not math.isfinite(number) or (positive and number <= 0):
                raise self.fail(key, value, "every entry must be a finite number" + (" > 0" if positive else ""))
            result.append(number)
        if not result:
            raise self.fail(key, value, "must hold at least one number")
        return result

    def float_matrix(self, key: str, rows: int, cols: int) -> list[list[float]]:
        """A ``rows`` x ``cols`` matrix written as a list of lists (e.g. a covariance)."""
        value = self._raw(key)
        shape_ok = (isinstance(value, list) and len(value) == rows
                    and all(isinstance(r, list) and len(r) == cols for r in value))
        if not shape_ok:
            raise self.fail(key, value, f"must be a {rows}x{cols} list of lists")
        numbers = [v for row in value for v in row]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in numbers):
            raise self.fail(key, value, "every entry must be a finite number")
        matrix = [[float(v) for v in row] for row in value]
        return matrix

    def batch_size(self, key: str, n_samples: int, *, allow_full: bool = True) -> int | None:
        """A batch size in 1..n_samples; ``null`` or ``"full"`` means full batch."""
        value = self._raw(key)
        if allow_full and (value is None or value == "full"):
            return None
        size = self.int(key, min=1)
        if size > n_samples:
            raise self.fail(key, size, f"larger than the {n_samples} training samples")
        return size

    def batch_sizes(self, key: str, n_samples: int) -> list[int]:
        """A list of batch sizes, each in 1..n_samples."""
        sizes = self.int_list(key, min=1)
        too_large = [size for size in sizes if size > n_samples]
        if too_large:
            raise self.fail(key, sizes, f"{too_large[0]} is larger than the {n_samples} training samples")
        return sizes


def _check_range(section: Section, key: str, value, lo, hi) -> None:
    if lo is not None and value < lo:
        raise section.fail(key, value, f"must be >= {lo}")
    if hi is not None and value > hi:
        raise section.fail(key, value, f"must be <= {hi}")


@dataclass(frozen=True)
class TrainSettings:
    """The shared ``train`` section; ``threads`` is a count, ``auto`` already resolved."""

    lr: float
    seed: int
    device: str
    threads: int


def usable_cores() -> int:
    """The cores this process may run on (a container's or ``taskset``'s limit, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def train_settings(params: Section) -> TrainSettings:
    """The whole ``train`` section, every key checked (a typo such as ``lrr`` is refused).

    ``threads`` (optional, default 1, as params.yaml sets it): torch's thread count for a stage that
    trains one network at a time; ``auto`` is every core this process may use
    (:func:`usable_cores`). Stages that train several networks side by side
    (``imdb_study`` with ``n_jobs`` > 1) give each one thread instead.

    What it changes: more threads split oneDNN's convolutions and BLAS's matrix
    products into parts summed in another order, so the last digits of weights,
    losses and metrics differ between thread counts, and so, with ``auto``,
    between machines with different core counts (results rounded to 6 digits
    mostly agree; weights.pt and dvc.lock's hashes do not). Set ``threads: 1``
    for the same bytes on every machine. Each run is still deterministic at a
    given count. Threads only pay on cores that are free: with DVC's queue
    running N experiments at once, use at most cores / N threads each (two runs
    of two threads on two cores were 2.5 times slower than two of one), and on
    a 2-core machine busy with other work one CNN epoch took 3 to 6 times
    longer on two threads than on one (on an idle one, two gained 0 to 20 %).
    """
    train = params.section("train")
    device = train.str("device")
    if not DEVICE_PATTERN.fullmatch(device):
        raise train.fail("device", device, "must be auto, cpu, cuda or cuda:N")
    threads = train._raw("threads", 1)
    if threads != "auto":
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise train.fail("threads", threads, "must be auto or an integer >= 1")
    settings = TrainSettings(lr=train.float("lr", positive=True),
                             seed=train.int("seed", min=0, max=2**32 - 1), device=device,
                             threads=usable_cores() if threads == "auto" else threads)
    train.check_all_used()
    return settings


def learning_rate(params: Section, model: Section) -> float:
    """The model's own ``lr`` when set (not null), else the shared ``train.lr``.

    This precedence is what lets ``dvc exp run -S train.lr=0.1`` move every
    model that has not pinned its own rate.
    """
    own = model.optional_float("lr", positive=True)
    return own if own is not None else train_settings(params).lr


def seed(params: Section, model: Section | None = None) -> int:
    """The model's own ``seed`` when it has one that is not null, else the shared ``train.seed``.

    A model's own seed lets ``dvc exp run -S mlp_moons.seed=4`` retrain that model alone, where
    ``-S train.seed=4`` moves every seeded stage.
    """
    own = model.optional_int("seed", min=0) if model is not None else None
    return train_settings(params).seed if own is None else own


def sgd_settings(params: Section, cfg: Section) -> dict:
    """The linear MNIST classifiers' ``lr`` (the section's, else ``train.lr``), ``batch_size``,
    ``iterations`` and ``eval_every``.

    The batch size is only checked to be >= 1 here, before the data are read;
    check it against the training samples with ``cfg.batch_size`` once they are.
    """
    return {"lr": learning_rate(params, cfg), "batch_size": cfg.batch_size("batch_size", sys.maxsize, allow_full=False),
            "iterations": cfg.int("iterations", min=1), "eval_every": cfg.int("eval_every", min=1)}
