"""Stage `mnist_linear`: train the hand-written (numpy) linear classifier of report 003.

Reads data/mnist/normalized.npz and params `mnist_linear` (+ `train` for the
seed, and for lr when the section's lr is null) and `data.mnist.source`; writes
models/mnist_linear/ (W and what rebuilds the model) and
plots/mnist_linear/history.csv (step, train/test loss and accuracy every
`eval_every` steps). Stage `mnist_evaluate` scores it.
"""
from __future__ import annotations

from nnlab import memory
from nnlab.cli import run, stage_parser
from nnlab.datasets import mnist
from nnlab.io import StageOutputs
from nnlab.models import linear
from nnlab.params import load_params, seed, sgd_settings
from nnlab.runtime import numpy_rng

INPUT = "data/mnist/normalized.npz"
NAME = "mnist_linear"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    settings = sgd_settings(params, cfg)
    cfg.check_all_used()
    memory.check(memory.history(cfg, "iterations", settings["iterations"] / settings["eval_every"]))
    source = params.section("data").section("mnist").str("source", choices=mnist.SOURCES)
    data = mnist.load_normalized(INPUT)
    cfg.batch_size("batch_size", len(data.labels_train), allow_full=False)
    result = linear.train_numpy(data, rng=numpy_rng(seed(params)), desc="hand-written linear", **settings)
    with StageOutputs() as out:
        linear.save_model(out.directory(f"models/{NAME}"), result, "numpy", settings=settings, source=source)
        out.csv(f"plots/{NAME}/history.csv", result.history)
    print(f"hand-written linear: {'diverged at step ' + str(result.diverged_at) if result.diverged else 'trained'}"
          f" ({result.steps} steps)")


if __name__ == "__main__":
    run(main)
