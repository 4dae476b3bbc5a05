"""Stage `mnist_grid`: the hand-written linear classifier over lr x batch size (report 003, task 3).

Reads data/mnist/normalized.npz and params `mnist_grid` (+ `train.seed`, `data.mnist.source`);
writes plots/mnist_grid/table.csv (one row per run: final and best accuracies,
seconds, diverged), plots/mnist_grid/best_lr.csv, plots/mnist_grid/history.csv,
plots/mnist_grid/curves.png, plots/mnist_grid/heatmap.png and
metrics/mnist_grid.json. Runs that overflow stop at the first non-finite loss
and are marked diverged.
"""
from __future__ import annotations

import sys

import numpy as np

from nnlab import memory, plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import mnist
from nnlab.io import StageOutputs
from nnlab.models import linear
from nnlab.params import load_params, seed
from nnlab.results import study_summary

INPUT = "data/mnist/normalized.npz"
NAME = "mnist_grid"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    lrs = cfg.float_list("lrs", positive=True)
    requested = cfg.batch_sizes("batch_sizes", sys.maxsize)  # type and >= 1 now, before reading data; the bound below
    iterations, eval_every = cfg.int("iterations", min=1), cfg.int("eval_every", min=1)
    cfg.check_all_used()
    source = params.section("data").section("mnist").str("source", choices=mnist.SOURCES)
    memory.check(memory.history(cfg, "iterations", iterations / eval_every,
                                copies=len(lrs) * len(requested)))
    data = mnist.load_normalized(INPUT)
    batch_sizes = cfg.batch_sizes("batch_sizes", len(data.labels_train))
    runs = linear.lr_batch_grid(data, lrs=lrs, batch_sizes=batch_sizes, iterations=iterations,
                                eval_every=eval_every, seed=seed(params))
    table = [{"run": f"lr_{run.settings['lr']:g}_batch_{run.settings['batch_size']}", **run.table_row()}
             for run in runs]
    best = linear.best_lr_per_batch(runs)
    by_pair = {(row["lr"], row["batch_size"]): row for row in table}
    best_test = np.array([[by_pair[lr, batch]["best_test_accuracy"] for batch in batch_sizes] for lr in lrs],
                         dtype=float)
    heatmap = plotting.heatmap(best_test, lrs, batch_sizes, title="best test accuracy", xlabel="batch size",
                               ylabel="learning rate", fmt="{:.3f}")
    curves = plotting.step_curves({f"batch {batch}": {f"lr {run.settings['lr']:g}": run.result.history
                                                      for run in runs if run.settings["batch_size"] == batch}
                                   for batch in batch_sizes})
    metrics = study_summary(table, "run", source=source, accuracy_column="final_test_accuracy")
    with StageOutputs() as out:
        out.csv(f"plots/{NAME}/table.csv", table)
        out.csv(f"plots/{NAME}/best_lr.csv", best)
        out.csv(f"plots/{NAME}/history.csv", [row for run in runs for row in run.history_rows()])
        out.figure(f"plots/{NAME}/heatmap.png", heatmap)
        out.figure(f"plots/{NAME}/curves.png", curves)
        out.json(f"metrics/{NAME}.json", metrics)
    for row in best:
        print(f"batch {row['batch_size']}: best lr {row['best_lr']:g} (best test accuracy "
              f"{row['best_test_accuracy']:.4f})")
    print(f"{metrics['diverged_runs']} of {len(table)} runs diverged")


if __name__ == "__main__":
    run(main)
