"""Stage `mnist_torch`: train the same linear classifier in PyTorch (report 003).

Reads data/mnist/normalized.npz and params `mnist_torch` (+ `train` for seed,
device, and lr when the section's is null) and `data.mnist.source`; writes
models/mnist_torch/ (the `nn.Linear` state_dict and what rebuilds it) and
plots/mnist_torch/history.csv. Stage `mnist_evaluate` scores it.
"""
from __future__ import annotations

import torch

from nnlab import memory
from nnlab.cli import run, stage_parser
from nnlab.datasets import mnist
from nnlab.io import StageOutputs
from nnlab.models import linear
from nnlab.params import load_params, seed, sgd_settings, train_settings
from nnlab.runtime import numpy_rng, seed_torch, torch_device

INPUT = "data/mnist/normalized.npz"
NAME = "mnist_torch"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    settings = sgd_settings(params, cfg)
    bias = cfg.bool("bias")
    cfg.check_all_used()
    memory.check(memory.history(cfg, "iterations", settings["iterations"] / settings["eval_every"]))
    source = params.section("data").section("mnist").str("source", choices=mnist.SOURCES)
    device = torch_device(train_settings(params).device)
    data = mnist.load_normalized(INPUT)
    cfg.batch_size("batch_size", len(data.labels_train), allow_full=False)
    seed_torch(seed(params))
    if device.type == "cpu":
        # A 784x10 model: a second thread only hands work back and forth (10x slower on a busy 2-core machine).
        torch.set_num_threads(1)
    result = linear.train_torch(data, rng=numpy_rng(seed(params)), device=device, bias=bias, desc="PyTorch linear",
                                **settings)
    with StageOutputs() as out:
        linear.save_model(out.directory(f"models/{NAME}"), result, "torch", settings={**settings, "bias": bias},
                          source=source)
        out.csv(f"plots/{NAME}/history.csv", result.history)
    print(f"PyTorch linear: {'diverged at step ' + str(result.diverged_at) if result.diverged else 'trained'}"
          f" ({result.steps} steps)")


if __name__ == "__main__":
    run(main)
