"""Stage `tanh_mlp`: train the tanh MLP with hand-written backpropagation on the circles (report 004).

Reads data/generated/circles.npz and params `tanh_mlp` (+ `train.seed` when its seed is null, and
`train.lr` when `tanh_mlp.lr` is null); writes models/tanh_mlp/ (the weights,
the input scaling fitted on the training points, and what rebuilds the net) and
plots/tanh_mlp/history.csv (losses and accuracies per epoch). Stage
`evaluate_2d@tanh_mlp` scores the saved model. Runs on the CPU whatever
`train.device` says: with 10 hidden units every step is a handful of tiny
operations, which a GPU only slows down.
"""
from __future__ import annotations

import sys

import pandas as pd

from nnlab import memory
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import load_circles
from nnlab.io import StageOutputs
from nnlab.models import tanh_mlp
from nnlab.params import learning_rate, load_params, seed
from nnlab.results import SCORE_COLUMNS
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
    run_seed = seed(params, cfg)
    cfg.check_all_used()
    memory.check(memory.tanh_mlp(cfg, "hidden_units", inputs=2, hidden=hidden_units, classes=2, runs=1,
                                 rows=memory.first_dimension(INPUT, "X_train", "X_test")),
                 memory.history(cfg, "epochs", epochs))
    split, _ = load_circles(INPUT)
    batch_size = cfg.batch_size("batch_size", len(split.y_train), allow_full=False)
    seed_torch(run_seed)
    data = tanh_mlp.CirclesData.from_split(split, standardize=standardize)
    result, = tanh_mlp.train_runs(data, hidden_units=hidden_units, batch_size=batch_size, lrs=[lr],
                                  epochs=epochs, seed=run_seed, init_std=init_std)
    with StageOutputs() as out:
        tanh_mlp.save_model(out.directory(f"models/{NAME}"), tanh_mlp.TanhNet(result.params, data.scaling), result,
                            classes=list(range(data.Y_train.shape[1])), source="generated", data=INPUT,
                            params={"lr": lr, "batch_size": batch_size, "epochs": epochs, "init_std": init_std,
                                    "seed": run_seed})
        out.csv(f"plots/{NAME}/history.csv", pd.DataFrame(result.history, columns=["epoch", *SCORE_COLUMNS]))
    if result.diverged:
        print(f"tanh_mlp: diverged at epoch {result.diverged_at}")
    else:
        print(f"tanh_mlp: train accuracy {result.final()['train_accuracy']:.3f}, "
              f"test accuracy {result.final()['test_accuracy']:.3f}")


if __name__ == "__main__":
    run(main)
