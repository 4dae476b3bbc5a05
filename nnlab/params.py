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

import math
from pathlib import Path
from typing import Any, Iterable

import yaml

from nnlab.errors import ParamError

_MISSING = object()


def load_params(path: str | Path = "params.yaml") -> "Section":
    """Read a params file and return its root as a :class:`Section`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ParamError(f"{path}: not valid YAML{line}") from None
    if not isinstance(data, dict):
        raise ParamError(f"{path}: expected a mapping of sections at the top level")
    return Section(data, file=str(path), prefix="")


class Section:
    """One mapping of params.yaml, with typed getters that validate."""

    def __init__(self, data: dict, *, file: str, prefix: str):
        self._data = data
        self._file = file
        self._prefix = prefix
        self._used: set[str] = set()

    # -- navigation ---------------------------------------------------------
    @property
    def name(self) -> str:
        return self._prefix

    def key_path(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def fail(self, key: str, value: Any, why: str) -> ParamError:
        """Build the one-line error for ``key`` (raise the result)."""
        return ParamError(f"{self._file}: {self.key_path(key)} = {value!r}: {why}")

    def keys(self) -> list[str]:
        return list(self._data)

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
                raise self.fail(key, value, f"{item!r} is not an integer") from None
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
                raise self.fail(key, value, f"{item!r} is not a number") from None
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


def learning_rate(params: Section, model: Section) -> float:
    """The model's own ``lr`` when set (not null), else the shared ``train.lr``.

    This precedence is what lets ``dvc exp run -S train.lr=0.1`` move every
    model that has not pinned its own rate.
    """
    if model.optional_float("lr", positive=True) is not None:
        return model.float("lr", positive=True)
    return params.section("train").float("lr", positive=True)


def seed(params: Section) -> int:
    """The shared ``train.seed``."""
    return params.section("train").int("seed", min=0, max=2**32 - 1)
