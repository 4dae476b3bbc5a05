"""Stage `perceptron`: train the batch perceptron on the default gaussians (report 002 §1-2).

Reads data/generated/gaussians.npz and params `perceptron` (+ `train.lr` when
`perceptron.lr` is null); writes models/perceptron/ (the weight vector and what
rebuilds the model) and plots/perceptron/history.csv (losses and accuracies per
epoch). Stage `evaluate_2d@perceptron` scores the saved model.
"""
from __future__ import annotations

import pandas as pd

from nnlab import memory
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import load_split
from nnlab.io import StageOutputs
from nnlab.models import perceptron
from nnlab.params import learning_rate, load_params
from nnlab.results import SCORE_COLUMNS

INPUT = "data/generated/gaussians.npz"
NAME = "perceptron"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    lr = learning_rate(params, cfg)
    max_epochs = cfg.int("max_epochs", min=1)
    cfg.check_all_used()
    memory.check(memory.history(cfg, "max_epochs", max_epochs))
    data = load_split(INPUT)
    perceptron.check_labels(data.y_train, INPUT)
    training = perceptron.train(data.X_train, data.y_train, data.X_test, data.y_test, lr=lr, max_epochs=max_epochs)
    with StageOutputs() as out:
        perceptron.save_model(out.directory(f"models/{NAME}"), training, source="generated", data=INPUT,
                              params={"lr": lr, "max_epochs": max_epochs})
        out.csv(f"plots/{NAME}/history.csv", pd.DataFrame(training.result.history, columns=["epoch", *SCORE_COLUMNS]))
    stop = f"converged at epoch {training.result.trained}" if training.converged else f"{max_epochs} epochs"
    final = training.result.final()
    print(f"perceptron: {stop}, train accuracy {final['train_accuracy']:.3f}, "
          f"test accuracy {final['test_accuracy']:.3f}")


if __name__ == "__main__":
    run(main)
