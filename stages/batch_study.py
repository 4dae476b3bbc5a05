"""Stage `batch_study`: full-batch gradient descent against SGD and mini-batches (report 002 §4).

The mlp_moons model on moons (1000 samples) trained once per batch size for
the same number of epochs (passes over the training split) and the same lr.

Reads data/generated/moons_1000.npz and params `batch_study` (+ `train` for
the seed, and for lr when the section's lr is null); writes
metrics/batch_study.json (the best batch size and how many diverged), plots/batch_study/
history.csv (a row per batch size and evaluation: epoch, train/test loss and
accuracy; a diverged run's last row marks the epoch it diverged at), table.csv
(final and best test accuracy, updates, seconds) and {test_accuracy,train_loss}.png
(one curve per batch size).
"""
from __future__ import annotations

import time

from nnlab import memory
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import load_split
from nnlab.io import StageOutputs
from nnlab.models import mlp
from nnlab.nn import CrossEntropy, steps_per_epoch
from nnlab.params import learning_rate, load_params, seed
from nnlab.results import SCORE_COLUMNS, long_history, study_summary
from nnlab.runtime import numpy_rng

INPUT = "data/generated/moons_1000.npz"
NAME = "batch_study"
N_CLASSES = 2
FULL = "full"


def epoch_of(step: int | None, updates: int) -> int | None:
    """The epoch in which update ``step`` (counted from 1) falls; None for a run that did not diverge."""
    return None if step is None else -(-step // updates)


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    hidden = cfg.int_list("hidden_units")
    lr = learning_rate(params, cfg)
    sizes: list[int | None] = [None] if cfg.bool("full_batch") else []
    sizes += cfg.int_list("batch_sizes")
    epochs = cfg.int("epochs", min=1)
    eval_every = cfg.int("eval_every", min=1)
    init = cfg.str("init", choices=mlp.INITS)
    init_std = cfg.float("init_std", positive=True)
    cfg.check_all_used()
    memory.check(memory.numpy_mlp(cfg, "hidden_units", [2, *hidden, N_CLASSES],
                                  memory.first_dimension(INPUT, "X_train", "X_test")),
                 memory.history(cfg, "epochs", epochs / eval_every, copies=len(sizes)))
    data = load_split(INPUT)
    n_train = len(data.y_train)
    cfg.batch_sizes("batch_sizes", n_train)

    results, seconds, updates_per_epoch = {}, {}, {}
    for size in sizes:
        # Every size starts from the same weights and its own copy of the shuffling stream.
        rng = numpy_rng(seed(params))
        model = mlp.mlp([data.X_train.shape[1], *hidden, N_CLASSES], rng=rng, init=init, init_std=init_std)
        updates = steps_per_epoch(n_train, size)
        label = FULL if size is None else str(size)
        updates_per_epoch[label] = updates
        start = time.perf_counter()
        results[label] = model.train(
            data.X_train, data.y_train, CrossEntropy(), lr=lr, steps=epochs * updates, batch_size=size,
            eval_every=eval_every * updates, rng=rng, X_test=data.X_test, y_test=data.y_test,
            desc=f"batch {label}")
        seconds[label] = time.perf_counter() - start

    table = [{"batch_size": label, "epochs": epochs, "updates": result.trained,
              "final_train_accuracy": result.final()["train_accuracy"],
              "final_test_accuracy": result.final()["test_accuracy"],
              "best_test_accuracy": mlp.best_test_accuracy(result),
              "final_test_loss": result.final()["test_loss"],
              "diverged": result.diverged, "seconds": round(seconds[label], 3)}
             for label, result in results.items()]
    histories = {f"batch {label}": result.history for label, result in results.items()}
    figures = {column: mlp.compare_curves(histories, column, title=f"moons MLP, lr {lr:g}, {epochs} epochs")
               for column in ("test_accuracy", "train_loss")}

    with StageOutputs() as out:
        out.json(f"metrics/{NAME}.json", study_summary(table, "batch_size", source="generated", accuracy_column="final_test_accuracy"))
        out.csv(f"plots/{NAME}/table.csv", table)
        # Runs named as table.csv's batch_size names them.
        out.csv(f"plots/{NAME}/history.csv", long_history(
            {label: result.history for label, result in results.items()},
            {label: epoch_of(result.diverged_at, updates_per_epoch[label]) for label, result in results.items()},
            "epoch", SCORE_COLUMNS))
        for name, fig in figures.items():
            out.figure(f"plots/{NAME}/{name}.png", fig)
    for row in table:
        print(f"batch {row['batch_size']:>4}: {row['updates']:>6} updates, test accuracy "
              f"{row['final_test_accuracy']}, {row['seconds']} s")


if __name__ == "__main__":
    run(main)
