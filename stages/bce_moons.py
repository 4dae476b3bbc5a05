"""Stage `bce_moons`: train the network from scratch of report 000 §1 on moons (2000 samples).

Linear(2, 64) - ReLU - Linear(64, 1) - Sigmoid trained with binary
cross-entropy on the sigmoid's probabilities, plain SGD for a number of epochs.

Reads data/generated/moons_2000.npz and params `bce_moons` (+ `train` for the
seed, and for lr when the section's lr is null); writes models/bce_moons/ (the
weights and what rebuilds the net) and plots/bce_moons/history.csv (step, epoch,
train/test loss and accuracy every `eval_every` epochs). Stage
`evaluate_2d@bce_moons` scores the saved model.
"""
from __future__ import annotations

import sys

from nnlab import memory
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import load_split
from nnlab.models import mlp
from nnlab.nn import steps_per_epoch
from nnlab.params import learning_rate, load_params, seed
from nnlab.runtime import numpy_rng

INPUT = "data/generated/moons_2000.npz"
NAME = "bce_moons"
CLASSES = [0, 1]


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    hidden = cfg.int_list("hidden_units")
    lr = learning_rate(params, cfg)
    epochs = cfg.int("epochs", min=1)
    cfg.batch_size("batch_size", sys.maxsize)  # type and >= 1 now, before reading data; the bound below
    eval_every = cfg.int("eval_every", min=1)
    init = cfg.str("init", choices=mlp.INITS)
    init_std = cfg.float("init_std", positive=True)
    cfg.check_all_used()
    memory.check(memory.numpy_mlp(cfg, "hidden_units", [2, *hidden, 1], memory.first_dimension(INPUT, "X_train", "X_test")),
                 memory.history(cfg, "epochs", epochs / eval_every))
    data = load_split(INPUT)
    batch_size = cfg.batch_size("batch_size", len(data.y_train))

    run_seed = seed(params)
    rng = numpy_rng(run_seed)
    architecture = {"sizes": [data.X_train.shape[1], *hidden, 1], "activation": "relu", "output": "sigmoid",
                    "loss": "binary_cross_entropy"}
    model = mlp.Classifier(architecture, rng=rng, init=init, init_std=init_std)
    updates = steps_per_epoch(len(data.y_train), batch_size)
    result = model.net.train(data.X_train, data.y_train, model.loss_function, lr=lr, steps=epochs * updates,
                             batch_size=batch_size, eval_every=eval_every * updates, rng=rng,
                             X_test=data.X_test, y_test=data.y_test, desc=NAME)
    print(mlp.write_run(NAME, model, result, classes=CLASSES, data=INPUT,
                        params={"lr": lr, "epochs": epochs, "batch_size": batch_size, "eval_every": eval_every,
                                "init": init, "init_std": init_std, "seed": run_seed}))


if __name__ == "__main__":
    run(main)
