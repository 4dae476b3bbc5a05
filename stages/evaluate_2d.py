"""Stage `evaluate_2d@<model>`: score a trained classifier of the 2-D toy data (reports 000, 002, 004).

Run as `python -m stages.evaluate_2d --model <name>` with name one of
perceptron, mlp_moons, bce_moons, tanh_mlp. Reads models/<name>/ (with its
kind's loader), the split it was trained on from data/generated/ and
plots/<name>/history.csv; writes metrics/<name>.json (the headline: train and
test accuracy, test F1 of class 1), plots/<name>/evaluation.json (every score:
losses, per-class recall, how the run ended), plots/<name>/confusion.json
(test split), the training curves loss.png and accuracy.png, and decision.png:
the perceptron's decision line over both splits, or the net's P(class 1) over
the plane with the test points. Retrains nothing.
"""
from __future__ import annotations

from types import ModuleType
from typing import NamedTuple

import numpy as np
import pandas as pd

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import Split, load_split
from nnlab.io import StageOutputs
from nnlab.metrics import confusion_records
from nnlab.models import mlp, perceptron
from nnlab.results import TrainResult, classifier_scores, diverged_scores, model_evaluation, write_evaluation


class Model(NamedTuple):
    kind: str          # the model code: a module of nnlab.models with a `load_model`
    data: str          # the split it was trained on
    x: str             # the history column its curves run along
    title: str


MODELS = {
    "perceptron": Model("perceptron", "data/generated/gaussians.npz", "epoch",
                        "perceptron (loss: the perceptron criterion)"),
    "mlp_moons": Model("mlp", "data/generated/moons_1000.npz", "step", "moons MLP"),
    "bce_moons": Model("mlp", "data/generated/moons_2000.npz", "epoch", "moons, from scratch (BCE)"),
    "tanh_mlp": Model("tanh_mlp", "data/generated/circles.npz", "epoch", "tanh MLP"),
}


def model_code(kind: str) -> ModuleType:
    if kind == "tanh_mlp":   # imported here: it brings torch, two seconds of every start the numpy models skip
        from nnlab.models import tanh_mlp
        return tanh_mlp
    return {"perceptron": perceptron, "mlp": mlp}[kind]


def scores(model, X: np.ndarray, y: np.ndarray, classes: list, *, train: bool) -> tuple[dict, np.ndarray]:
    """A split's scores in the metrics schema, and the predicted class (an index into ``classes``) of every row."""
    predicted = np.searchsorted(classes, model.predict(X))
    return (classifier_scores(np.searchsorted(classes, y), predicted, [str(c) for c in classes],
                              model.loss(X, y), train=train), predicted)


def decision_figure(model, split: Split, title: str):
    if isinstance(model, perceptron.Perceptron):
        return plotting.decision_line(model.weights, {"train": (split.X_train, split.y_train),
                                                      "test": (split.X_test, split.y_test)}, title=title)
    grid = (split.extra["grid_x"], split.extra["grid_y"]) if "grid_x" in split.extra else None
    return plotting.decision_surface(model.class1_probability, split.X_test, split.y_test,
                                     title=f"{title}: P(class 1), test points", grid=grid)


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    args = parser.parse_args(argv)
    name, (kind, data, x, title) = args.model, MODELS[args.model]
    model, spec = model_code(kind).load_model(f"models/{name}", name)
    split = load_split(data)
    history = pd.read_csv(f"plots/{name}/history.csv").to_dict("records")
    result = TrainResult.from_run_record(spec["run"], history)
    classes, names = spec["classes"], [str(c) for c in spec["classes"]]
    if result.diverged:
        evaluation = model_evaluation(spec["source"], result.run_record(), diverged_scores(names, train=True),
                                      diverged_scores(names))
        confusion = confusion_records(np.searchsorted(classes, split.y_test), None, names)
    else:
        train, _ = scores(model, split.X_train, split.y_train, classes, train=True)
        test, predicted = scores(model, split.X_test, split.y_test, classes, train=False)
        evaluation = model_evaluation(spec["source"], result.run_record(), train, test)
        confusion = confusion_records(np.searchsorted(classes, split.y_test), predicted, names)
    figures = plotting.split_curves(history, x=x, metrics=("loss", "accuracy"), title=title)
    figures["decision"] = decision_figure(model, split, title)
    with StageOutputs() as out:
        write_evaluation(out, name, evaluation, confusion)
        for figure_name, figure in figures.items():
            out.figure(f"plots/{name}/{figure_name}.png", figure)
    print(f"{name}: diverged" if evaluation["diverged"] else
          f"{name}: train accuracy {evaluation['train']['accuracy']:.4f}, "
          f"test accuracy {evaluation['test']['accuracy']:.4f}, F1 {evaluation['test']['f1']:.4f}")


if __name__ == "__main__":
    run(main)
