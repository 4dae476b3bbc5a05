"""Stage `tanh_grid`: the tanh MLP over batch size x learning rate (report 004, 30 runs).

Reads data/generated/circles.npz and params `tanh_grid` (+ `train.seed`);
writes plots/tanh_grid/table.csv (one row per run: final train/test accuracy
and loss, seconds, diverged), plots/tanh_grid/history.csv (every run's
epochs), plots/tanh_grid/heatmap.png (final test accuracy, diverged runs
marked), plots/tanh_grid/curves.png and metrics/tanh_grid.json (the best run and how
many diverged; no times).
Every run starts from the same initialisation; the runs of one batch size are
trained together on the same batches (see nnlab.models.tanh_mlp.train_runs),
so `seconds` is each run's share of that joint loop.
"""
from __future__ import annotations

import numpy as np

from nnlab import memory, plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import load_circles
from nnlab.io import StageOutputs
from nnlab.models import tanh_mlp
from nnlab.params import load_params, seed
from nnlab.results import study_summary
from nnlab.runtime import seed_torch

INPUT = "data/generated/circles.npz"
NAME = "tanh_grid"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    batch_sizes = cfg.int_list("batch_sizes", min=1)
    lrs = cfg.float_list("lrs", positive=True)
    hidden_units = cfg.int("hidden_units", min=1)
    epochs = cfg.int("epochs", min=1)
    init_std = cfg.float("init_std", positive=True)
    standardize = cfg.bool("standardize")
    cfg.check_all_used()
    memory.check(memory.tanh_mlp(cfg, "hidden_units", inputs=2, hidden=hidden_units, classes=2, runs=len(lrs),
                                 rows=memory.first_dimension(INPUT, "X_train", "X_test")),
                 memory.history(cfg, "epochs", epochs, copies=len(lrs) * len(batch_sizes)))
    split, _ = load_circles(INPUT)
    cfg.batch_sizes("batch_sizes", len(split.y_train))
    run_seed = seed(params)
    seed_torch(run_seed)
    data = tanh_mlp.CirclesData.from_split(split, standardize=standardize)
    runs = [result for batch_size in batch_sizes
            for result in tanh_mlp.train_runs(data, hidden_units=hidden_units, batch_size=batch_size, lrs=lrs,
                                              epochs=epochs, seed=run_seed, init_std=init_std)]
    table = [{"run": f"batch_{run.batch_size}_lr_{run.lr:g}", **run.table_row()} for run in runs]
    test_accuracy = np.array([[run.final()["test_accuracy"] for run in runs if run.batch_size == size]
                              for size in batch_sizes])
    heatmap = plotting.heatmap(test_accuracy, batch_sizes, [f"{lr:g}" for lr in lrs],
                               title="tanh MLP: final test accuracy", xlabel="learning rate",
                               ylabel="batch size", fmt="{:.3f}")
    with StageOutputs() as out:
        out.csv(f"plots/{NAME}/table.csv", table)
        out.csv(f"plots/{NAME}/history.csv", [{"batch_size": run.batch_size, "lr": run.lr, **row}
                                               for run in runs for row in run.history])
        out.figure(f"plots/{NAME}/heatmap.png", heatmap)
        out.figure(f"plots/{NAME}/curves.png", plotting.grid_curves(runs))
        out.json(f"metrics/{NAME}.json", study_summary(table, "run", source="generated"))
    for row in table:
        outcome = (f"diverged at epoch {row['diverged_epoch']}" if row["diverged"] else
                   f"train {row['train_accuracy']:.3f}, test {row['test_accuracy']:.3f}")
        print(f"batch {row['batch_size']}, lr {row['lr']:g}: {outcome}")


if __name__ == "__main__":
    run(main)
