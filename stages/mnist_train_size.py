"""Stage `mnist_train_size`: the hand-written linear classifier on N' training digits (report 003, task 5).

Reads data/mnist/normalized.npz and params `mnist_train_size` (+ `train.seed`, `data.mnist.source`);
writes plots/mnist_train_size/table.csv (requested and used N', whether it was
clamped to the training set, final and best accuracies, seconds),
plots/mnist_train_size/history.csv, plots/mnist_train_size/curves.png and
metrics/mnist_train_size.json (the best N', how many diverged). A size above the
training set is clamped to it.
"""
from __future__ import annotations

from nnlab import memory, plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import mnist
from nnlab.io import StageOutputs
from nnlab.models import linear
from nnlab.params import load_params, seed, sgd_settings
from nnlab.results import study_summary

INPUT = "data/mnist/normalized.npz"
NAME = "mnist_train_size"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    sizes = cfg.int_list("sizes", min=1)
    settings = sgd_settings(params, cfg)
    cfg.check_all_used()
    source = params.section("data").section("mnist").str("source", choices=mnist.SOURCES)
    memory.check(memory.history(cfg, "iterations", settings["iterations"] / settings["eval_every"], copies=len(sizes)))
    data = mnist.load_normalized(INPUT)
    cfg.batch_size("batch_size", min(*sizes, len(data.labels_train)), allow_full=False)  # the smallest run's
    runs = linear.train_size_study(data, sizes=sizes, seed=seed(params), **settings)
    table = [run.table_row() for run in runs]
    fig = plotting.step_curves({f"lr {settings['lr']:g}, batch {settings['batch_size']}": {
        f"N'={run.settings['used_size']}": run.result.history for run in runs}})
    metrics = study_summary(table, "requested_size", source=source, accuracy_column="final_test_accuracy")
    with StageOutputs() as out:
        out.csv(f"plots/{NAME}/table.csv", table)
        out.csv(f"plots/{NAME}/history.csv", [row for run in runs for row in run.history_rows()])
        out.figure(f"plots/{NAME}/curves.png", fig)
        out.json(f"metrics/{NAME}.json", metrics)
    for row in table:
        clamped = f" (clamped from {row['requested_size']}: only {row['used_size']} training digits)" \
            if row["clamped"] else ""
        print(f"N'={row['used_size']}{clamped}: test accuracy {row['final_test_accuracy']}")


if __name__ == "__main__":
    run(main)
