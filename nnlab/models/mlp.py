"""Multi-layer perceptrons built from the numpy layers of :mod:`nnlab.nn`, saved and loaded as model folders."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from nnlab import artifacts, plotting
from nnlab.errors import DataError
from nnlab.io import StageOutputs
from nnlab.nn import HISTORY_COLUMNS, BinaryCrossEntropy, CrossEntropy, LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Tanh
from nnlab.nn import init as initialisers
from nnlab.results import TrainResult

KIND = "numpy_mlp"
ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "leaky_relu": LeakyReLU}
OUTPUTS = {"sigmoid": Sigmoid}
LOSSES = {"cross_entropy": CrossEntropy, "binary_cross_entropy": BinaryCrossEntropy}
INITS = tuple(initialisers.INITIALISERS)


def mlp(sizes: Sequence[int], *, rng: np.random.Generator | None, init: str = "he", init_std: float | None = None,
        activation: str = "relu", output=None) -> Sequential:
    """``Linear`` layers through ``sizes`` (input, hidden..., output) with ``activation`` between them.

    ``init`` names the weights' initialiser (``init_std`` is the std of ``normal``).
    ``output`` is an optional last layer (e.g. ``Sigmoid()``); without it the
    network ends in raw scores for a loss that takes logits.
    """
    initialiser = initialisers.get(init, std=init_std)
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if k:
            layers.append(ACTIVATIONS[activation]())
        layers.append(Linear(n_in, n_out, rng=rng, init=initialiser))
    if output is not None:
        layers.append(output)
    return Sequential(layers)


class Classifier:
    """An :func:`mlp` and the loss it is trained on, rebuilt from ``architecture`` alone.

    ``architecture``: ``sizes``, ``activation``, ``output`` (a last layer's name or
    None) and ``loss`` (a name of :data:`LOSSES`), as saved in the model's spec.
    """

    def __init__(self, architecture: dict, *, rng: np.random.Generator | None, init: str = "he",
                 init_std: float | None = None):
        self.architecture = architecture
        output = architecture["output"]
        self.net = mlp(architecture["sizes"], rng=rng, init=init, init_std=init_std,
                       activation=architecture["activation"], output=OUTPUTS[output]() if output else None)
        self.loss_function = LOSSES[architecture["loss"]]()

    def __repr__(self) -> str:
        return repr(self.net)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        return self.loss_function.probabilities(self.net.forward(X))

    def class1_probability(self, X: np.ndarray) -> np.ndarray:
        """P(class 1): the last column, whether the net ends in two scores or in one probability."""
        return self.probabilities(X)[:, -1]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class labels, read off the output as the loss's accuracy reads them."""
        output = self.net.forward(X)
        if output.shape[1] > 1:
            return output.argmax(axis=1)
        return (self.loss_function.probabilities(output)[:, 0] >= 0.5).astype(np.int64)

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        return self.loss_function.forward(self.net.forward(X), y)

    def weights(self) -> dict[str, np.ndarray]:
        """Every parameter array, named ``<layer index>.<name>`` (the arrays themselves, not copies)."""
        return {f"{index}.{name}": param for index, layer in enumerate(self.net.layers)
                for name, param in layer.params().items()}


def save_model(directory: Path, classifier: Classifier, result: TrainResult, **spec) -> None:
    """The weights and what rebuilds the classifier; ``spec`` adds the classes, the params that
    shaped it and the data source (see :mod:`nnlab.artifacts`)."""
    artifacts.save_arrays(directory, classifier.weights())
    artifacts.write_spec(directory, KIND, architecture=classifier.architecture, run=result.run_record(), **spec)


def write_run(name: str, classifier: Classifier, result: TrainResult, *, classes: list, data: str,
              params: dict) -> str:
    """A training stage's outputs, models/<name>/ (from ``data``, generated) and plots/<name>/history.csv;
    returns the line the stage prints."""
    import pandas as pd

    with StageOutputs() as out:
        save_model(out.directory(f"models/{name}"), classifier, result, classes=classes, source="generated",
                   data=data, params=params)
        out.csv(f"plots/{name}/history.csv", pd.DataFrame(result.history, columns=HISTORY_COLUMNS))
    final = result.final()
    return (f"{name}: {classifier}: train accuracy {final['train_accuracy']}, "
            f"test accuracy {final['test_accuracy']}{' (diverged)' if result.diverged else ''}")


def load_model(directory: str | Path, stage: str) -> tuple[Classifier, dict]:
    """The classifier saved by :func:`save_model` and its spec."""
    spec = artifacts.read_spec(directory, KIND, stage)
    classifier = Classifier(spec["architecture"], rng=None, init="zeros")  # zeros draw nothing
    arrays = artifacts.load_arrays(directory)
    params = classifier.weights()
    if arrays.keys() != params.keys() or any(arrays[key].shape != param.shape for key, param in params.items()):
        raise DataError(f"{directory}: weights that do not fit the architecture in {artifacts.SPEC}")
    for key, param in params.items():
        param[...] = arrays[key]  # in place: the net's SGD updates hold these very arrays
    return classifier, spec


def best_test_accuracy(result: TrainResult) -> float:
    scores = [row["test_accuracy"] for row in result.history if math.isfinite(row["test_accuracy"])]
    return max(scores) if scores and not result.diverged else math.nan


def compare_curves(histories: dict[str, list[dict]], column: str, *, title: str, x: str = "epoch"):
    """One line of ``column`` per run; runs that stopped early (diverged) end early."""
    longest = max(histories.values(), key=len)
    xs = [row[x] for row in longest]
    series = {label: [row[column] for row in history] + [math.nan] * (len(longest) - len(history))
              for label, history in histories.items()}
    return plotting.curves(xs, series, title=title, xlabel=x, ylabel=column.replace("_", " "))
