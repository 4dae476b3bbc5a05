"""Stage `tanh_mlp`: the tanh MLP with hand-written backpropagation on the circles (report 004).

Reads data/generated/circles.npz (train/test points and the grid_x/grid_y
mesh) and params `tanh_mlp` (+ `train.seed`, and `train.lr` when
`tanh_mlp.lr` is null); writes metrics/tanh_mlp.json,
plots/tanh_mlp/history.csv (losses and accuracies per epoch),
plots/tanh_mlp/loss.png, plots/tanh_mlp/accuracy.png and
plots/tanh_mlp/decision_surface.png. Runs on the CPU whatever
`train.device` says: with 10 hidden units every step is a handful of tiny
operations, which a GPU only slows down.
"""
from __future__ import annotations

import sys

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import load_circles
from nnlab.io import StageOutputs
from nnlab.models import tanh_mlp
from nnlab.params import learning_rate, load_params, seed
from nnlab.runtime import seed_torch

INPUT = "data/generated/circles.npz"
NAME = "tanh_mlp"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    lr = learning_rate(params, cfg)
    hidden_units = cfg.int("hidden_units", min=1)
    cfg.batch_size("batch_size", sys.maxsize, allow_full=False)  # type and >= 1 now, before reading data; the bound below
    epochs = cfg.int("epochs", min=1)
    init_std = cfg.float("init_std", positive=True)
    standardize = cfg.bool("standardize")
    cfg.check_all_used()
    split, grid = load_circles(INPUT)
    batch_size = cfg.batch_size("batch_size", len(split.y_train), allow_full=False)
    run_seed = seed(params)
    seed_torch(run_seed)
    data = tanh_mlp.CirclesData.from_split(split, standardize=standardize)
    result, = tanh_mlp.train_runs(data, hidden_units=hidden_units, batch_size=batch_size, lrs=[lr],
                                  epochs=epochs, seed=run_seed, init_std=init_std)
    figures = plotting.split_curves(result.history, title=f"tanh MLP (batch {batch_size}, lr {lr:g})", x="epoch")
    figures["decision_surface"] = plotting.decision_surface(
        lambda points: tanh_mlp.predict_class1(result.params, data, points), split.X_train, split.y_train,
        title="tanh MLP: P(class 1), training points", grid=grid)
    metrics = {**result.metrics(), "epochs": len(result.history)}
    with StageOutputs() as out:
        out.json(f"metrics/{NAME}.json", metrics)
        out.csv(f"plots/{NAME}/history.csv", result.history)
        for name, fig in figures.items():
            out.figure(f"plots/{NAME}/{name}.png", fig)
    if result.diverged:
        print(f"tanh_mlp: diverged at epoch {result.diverged_epoch}")
    else:
        print(f"tanh_mlp: train accuracy {metrics['train']['accuracy']:.3f}, "
              f"test accuracy {metrics['test']['accuracy']:.3f}")


if __name__ == "__main__":
    run(main)
