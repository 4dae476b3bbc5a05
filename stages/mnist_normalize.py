"""Stage `mnist_normalize`: flatten to 784, scale to [0, 1] in float32, one-hot the labels.

Reads data/mnist/raw.npz and params `mnist_normalize` (+ `data.mnist.source`);
writes data/mnist/normalized.npz, models/mnist_scaling/ (the scaling, which
`python -m nnlab.predict mnist` applies to new digits) and
plots/mnist_normalize/samples.png (a grid of training digits with their
labels, starting at `sample_index`).
"""
from __future__ import annotations

from nnlab.cli import run, stage_parser
from nnlab.datasets import mnist
from nnlab.io import StageOutputs
from nnlab.params import load_params

INPUT = "data/mnist/raw.npz"
OUTPUT = "data/mnist/normalized.npz"
SCALING = "models/mnist_scaling"
SAMPLES_PLOT = "plots/mnist_normalize/samples.png"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    source = params.section("data").section("mnist").str("source", choices=mnist.SOURCES)
    cfg = params.section("mnist_normalize")
    count = cfg.int("sample_count", min=1, max=64)
    cfg.int("sample_index", min=0)  # checked now, before reading data; the upper bound below
    cfg.check_all_used()
    split = mnist.load_split(INPUT)
    first = cfg.int("sample_index", min=0, max=len(split.labels_train) - count)
    data = mnist.normalize(split)
    fig = mnist.sample_grid(data.X_train, data.labels_train, first, count)
    with StageOutputs() as out:
        out.npz(OUTPUT, **data.arrays())
        mnist.save_scaling(out.directory(SCALING), source)
        out.figure(SAMPLES_PLOT, fig)
    print(f"normalized {len(data.X_train)} train and {len(data.X_test)} test digits to {data.X_train.shape[1]} "
          f"float32 pixels in [{data.X_train.min():g}, {data.X_train.max():g}]")


if __name__ == "__main__":
    run(main)
