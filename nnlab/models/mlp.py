"""Multi-layer perceptrons built from the numpy layers of :mod:`nnlab.nn`, and what their stages share."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from nnlab import plotting
from nnlab.nn import LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Tanh, TrainResult
from nnlab.nn import init as initialisers
from nnlab.params import Section

ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "leaky_relu": LeakyReLU}


def mlp(sizes: Sequence[int], *, rng: np.random.Generator, init="he", activation: str = "relu",
        output=None) -> Sequential:
    """``Linear`` layers through ``sizes`` (input, hidden..., output) with ``activation`` between them.

    ``output`` is an optional last layer (e.g. ``Sigmoid()``); without it the
    network ends in raw scores for a loss that takes logits.
    """
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if k:
            layers.append(ACTIVATIONS[activation]())
        layers.append(Linear(n_in, n_out, rng=rng, init=init))
    if output is not None:
        layers.append(output)
    return Sequential(layers)


def read_init(cfg: Section) -> initialisers.Initialiser:
    """The section's ``init`` (a name) and ``init_std`` (the std of ``normal``)."""
    name = cfg.str("init", choices=tuple(initialisers.INITIALISERS))
    return initialisers.get(name, std=cfg.float("init_std", positive=True))


def summary(result: TrainResult) -> dict:
    """The nested metrics of one run: final scores (nulls once diverged), best test accuracy, updates made."""
    final = result.final()
    return {
        "train": {"loss": final["train_loss"], "accuracy": final["train_accuracy"]},
        "test": {"loss": final["test_loss"], "accuracy": final["test_accuracy"],
                 "best_accuracy": result.best_test_accuracy()},
        "steps": result.steps,
        "diverged": result.diverged,
    }


def compare_curves(histories: dict[str, list[dict]], column: str, *, title: str, x: str = "epoch"):
    """One line of ``column`` per run; runs that stopped early (diverged) end early."""
    longest = max(histories.values(), key=len)
    xs = [row[x] for row in longest]
    series = {label: [row[column] for row in history] + [math.nan] * (len(longest) - len(history))
              for label, history in histories.items()}
    return plotting.curves(xs, series, title=title, xlabel=x, ylabel=column.replace("_", " "))
