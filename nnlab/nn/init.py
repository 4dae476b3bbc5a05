"""Weight initialisers, chosen by name from params.

Every initialiser takes the weight ``shape`` as ``(fan_in, fan_out)`` and a
numpy ``Generator`` (so a seed fixes the weights) and returns a float64 array.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

Initialiser = Callable[[tuple, np.random.Generator], np.ndarray]


def zeros(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """All zero: every hidden unit gets the same gradient and they never differ (symmetry)."""
    return np.zeros(shape)


def normal(shape: tuple, rng: np.random.Generator, std: float = 0.01) -> np.ndarray:
    return rng.normal(0.0, std, size=shape)


def xavier(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Glorot uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape)


def he(shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """He normal: std sqrt(2 / fan_in), which keeps the activation scale through ReLU layers."""
    return rng.normal(0.0, np.sqrt(2.0 / shape[0]), size=shape)


INITIALISERS = {"zeros": zeros, "normal": normal, "xavier": xavier, "he": he}


def get(name: str, *, std: float | None = None) -> Initialiser:
    """The initialiser called ``name``; ``std`` applies to ``normal`` only."""
    if name not in INITIALISERS:
        raise ValueError(f"unknown initialiser {name!r} (choose from {', '.join(INITIALISERS)})")
    if name == "normal" and std is not None:
        return functools.partial(normal, std=std)
    return INITIALISERS[name]
