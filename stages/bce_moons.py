"""Stage `bce_moons`: the network from scratch of report 000 §1 on moons (2000 samples).

Linear(2, 64) - ReLU - Linear(64, 1) - Sigmoid trained with binary
cross-entropy on the sigmoid's probabilities, plain SGD for a number of epochs.

Reads data/generated/moons_2000.npz and params `bce_moons` (+ `train` for the
seed, and for lr when the section's lr is null); writes metrics/bce_moons.json,
plots/bce_moons/history.csv (step, epoch, train/test loss and accuracy every
`eval_every` epochs) and plots/bce_moons/{loss,accuracy,decision_boundary}.png.
"""
from __future__ import annotations

import sys

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import load_split
from nnlab.io import StageOutputs
from nnlab.models import mlp
from nnlab.nn import BinaryCrossEntropy, Sigmoid, steps_per_epoch
from nnlab.params import learning_rate, load_params, seed
from nnlab.runtime import numpy_rng

INPUT = "data/generated/moons_2000.npz"
NAME = "bce_moons"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    hidden = cfg.int_list("hidden_units")
    lr = learning_rate(params, cfg)
    epochs = cfg.int("epochs", min=1)
    cfg.batch_size("batch_size", sys.maxsize)  # type and >= 1 now, before reading data; the bound below
    eval_every = cfg.int("eval_every", min=1)
    initialiser = mlp.read_init(cfg)
    cfg.check_all_used()
    data = load_split(INPUT)
    batch_size = cfg.batch_size("batch_size", len(data.y_train))

    rng = numpy_rng(seed(params))
    model = mlp.mlp([data.X_train.shape[1], *hidden, 1], rng=rng, init=initialiser, output=Sigmoid())
    updates = steps_per_epoch(len(data.y_train), batch_size)
    result = model.train(data.X_train, data.y_train, BinaryCrossEntropy(), lr=lr, steps=epochs * updates,
                         batch_size=batch_size, eval_every=eval_every * updates, rng=rng,
                         X_test=data.X_test, y_test=data.y_test, desc=NAME)
    summary = mlp.summary(result)
    figures = plotting.split_curves(result.history, title="moons, from scratch (BCE)", x="epoch")
    boundary = plotting.decision_surface(
        lambda X: model.forward(X)[:, 0], data.X_test, data.y_test,
        title=f"{model}\nlr {lr:g}, batch {batch_size or 'full'}: test accuracy {summary['test']['accuracy']}")

    with StageOutputs() as out:
        out.json(f"metrics/{NAME}.json", summary)
        out.csv(f"plots/{NAME}/history.csv", result.history)
        for metric, fig in figures.items():
            out.figure(f"plots/{NAME}/{metric}.png", fig)
        out.figure(f"plots/{NAME}/decision_boundary.png", boundary)
    print(f"{NAME}: {model}: train accuracy {summary['train']['accuracy']}, "
          f"test accuracy {summary['test']['accuracy']}{' (diverged)' if result.diverged else ''}")


if __name__ == "__main__":
    run(main)
