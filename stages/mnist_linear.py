"""Stage `mnist_linear`: the hand-written (numpy) linear classifier of report 003.

Reads data/mnist/normalized.npz and params `mnist_linear` (+ `train` for the
seed, and for lr when the section's lr is null); writes metrics/mnist_linear.json,
plots/mnist_linear/history.csv (step, train/test loss and accuracy every
`eval_every` steps) and plots/mnist_linear/curves.png.
"""
from __future__ import annotations

from nnlab.cli import run, stage_parser
from nnlab.datasets import mnist
from nnlab.io import StageOutputs
from nnlab.models import linear
from nnlab.params import load_params, seed
from nnlab.runtime import numpy_rng

INPUT = "data/mnist/normalized.npz"
NAME = "mnist_linear"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    settings = linear.sgd_settings(params, cfg)
    cfg.check_all_used()
    data = mnist.load_normalized(INPUT)
    cfg.batch_size("batch_size", len(data.labels_train), allow_full=False)
    result = linear.train_numpy(data, rng=numpy_rng(seed(params)), desc="hand-written linear", **settings)
    summary = result.summary()
    fig = linear.curves_figure({"hand-written linear": {
        f"lr {settings['lr']:g}, batch {settings['batch_size']}": result.history}})
    with StageOutputs() as out:
        out.json(f"metrics/{NAME}.json", summary)
        out.csv(f"plots/{NAME}/history.csv", result.history)
        out.figure(f"plots/{NAME}/curves.png", fig)
    print(f"hand-written linear: train {summary['train']['accuracy']}, test {summary['test']['accuracy']}"
          f"{' (diverged)' if result.diverged else ''}")


if __name__ == "__main__":
    run(main)
