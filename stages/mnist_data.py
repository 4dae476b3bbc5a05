"""Stage `mnist_data`: the MNIST digits as uint8 arrays, from the source params choose.

Reads params `data.mnist` (source embedded | idx | download); writes
data/mnist/raw.npz (images_train/test (n, 28, 28), labels_train/test) and
plots/mnist_data/data_stats.json (the split sizes and class counts: facts
about the data, not metrics).
"""
from __future__ import annotations

import numpy as np

from nnlab.cli import run, stage_parser
from nnlab.datasets import mnist
from nnlab.io import StageOutputs
from nnlab.params import load_params

OUTPUT = "data/mnist/raw.npz"
STATS = "plots/mnist_data/data_stats.json"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    cfg = load_params(args.params).section("data").section("mnist")
    source = cfg.str("source", choices=mnist.SOURCES)
    settings = {"idx_dir": cfg.str("idx_dir"), "download_dir": cfg.str("download_dir"),
                "test_fraction": cfg.float("test_fraction", min=0.01, max=0.99), "seed": cfg.int("seed", min=0)}
    cfg.check_all_used()
    split = mnist.load(source, **settings)
    stats = {"source": source, **{
        name: {"samples": len(labels), "per_class": np.bincount(labels, minlength=mnist.N_CLASSES)}
        for name, labels in (("train", split.labels_train), ("test", split.labels_test))}}
    with StageOutputs() as out:
        out.npz(OUTPUT, **split.arrays())
        out.json(STATS, stats)
    print(f"mnist ({source}): {stats['train']['samples']} train, {stats['test']['samples']} test digits")


if __name__ == "__main__":
    run(main)
