"""Stage `mnist_torch`: the same linear classifier in PyTorch, and the bar chart against the hand-written one.

Reads data/mnist/normalized.npz, metrics/mnist_linear.json and params
`mnist_torch` (+ `train` for seed, device, and lr when the section's is null);
writes metrics/mnist_torch.json, plots/mnist_torch/history.csv,
plots/mnist_torch/curves.png and plots/mnist_torch/comparison.png.
"""
from __future__ import annotations

import json

import torch

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import mnist
from nnlab.errors import DataError
from nnlab.io import StageOutputs
from nnlab.models import linear
from nnlab.params import load_params, seed
from nnlab.runtime import numpy_rng, seed_torch, torch_device

INPUT = "data/mnist/normalized.npz"
HAND_WRITTEN_METRICS = "metrics/mnist_linear.json"
NAME = "mnist_torch"


def read_hand_written() -> dict:
    try:
        with open(HAND_WRITTEN_METRICS, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DataError(f"{HAND_WRITTEN_METRICS}: not found (run `dvc repro mnist_linear` first)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{HAND_WRITTEN_METRICS}: not valid JSON ({exc})") from None


def accuracies(summary: dict) -> dict:
    # A diverged run has null accuracies: draw no bar rather than fail.
    return {split: summary[split]["accuracy"] if summary[split]["accuracy"] is not None else float("nan")
            for split in ("train", "test")}


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    settings = linear.sgd_settings(params, cfg)
    bias = cfg.bool("bias")
    cfg.check_all_used()
    device = torch_device(params.section("train").str("device"))
    data = mnist.load_normalized(INPUT)
    cfg.batch_size("batch_size", len(data.labels_train), allow_full=False)
    hand_written = read_hand_written()
    seed_torch(seed(params))
    if device.type == "cpu":
        # A 784x10 model: a second thread only hands work back and forth (10x slower on a busy 2-core machine).
        torch.set_num_threads(1)
    result = linear.train_torch(data, rng=numpy_rng(seed(params)), device=device, bias=bias, desc="PyTorch linear",
                                **settings)
    summary = result.summary()
    curves = linear.curves_figure({"PyTorch linear": {
        f"lr {settings['lr']:g}, batch {settings['batch_size']}": result.history}})
    comparison = plotting.bar_chart({"hand-written (numpy)": accuracies(hand_written), "PyTorch": accuracies(summary)},
                                    title="Linear MNIST classifier: final accuracy", ylabel="accuracy")
    with StageOutputs() as out:
        out.json(f"metrics/{NAME}.json", summary)
        out.csv(f"plots/{NAME}/history.csv", result.history)
        out.figure(f"plots/{NAME}/curves.png", curves)
        out.figure(f"plots/{NAME}/comparison.png", comparison)
    print(f"PyTorch linear: train {summary['train']['accuracy']}, test {summary['test']['accuracy']}"
          f"{' (diverged)' if result.diverged else ''}")


if __name__ == "__main__":
    run(main)
