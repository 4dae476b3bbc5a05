"""Stage `perceptron`: the batch perceptron on the default gaussians (report 002 §1-2).

Reads data/generated/gaussians.npz and params `perceptron` (+ `train.lr` when
`perceptron.lr` is null); writes metrics/perceptron.json,
plots/perceptron/history.csv (losses and accuracies per epoch),
plots/perceptron/loss.png, plots/perceptron/accuracy.png and
plots/perceptron/decision_line.png.
"""
from __future__ import annotations

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import load_split
from nnlab.io import StageOutputs
from nnlab.models import perceptron
from nnlab.params import learning_rate, load_params

INPUT = "data/generated/gaussians.npz"
NAME = "perceptron"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    lr = learning_rate(params, cfg)
    max_epochs = cfg.int("max_epochs", min=1)
    cfg.check_all_used()
    data = load_split(INPUT)
    perceptron.check_labels(data.y_train, INPUT)
    result = perceptron.train(data.X_train, data.y_train, data.X_test, data.y_test, lr=lr, max_epochs=max_epochs)
    figures = plotting.split_curves(result.history, title="perceptron (loss: the perceptron criterion)", x="epoch")
    line_fig = perceptron.decision_line_figure(
        result.weights, {"train": (data.X_train, data.y_train), "test": (data.X_test, data.y_test)},
        title="perceptron")
    metrics = perceptron.summary(result)
    with StageOutputs() as out:
        out.json(f"metrics/{NAME}.json", metrics)
        out.csv(f"plots/{NAME}/history.csv", result.history)
        for metric, fig in figures.items():
            out.figure(f"plots/{NAME}/{metric}.png", fig)
        out.figure(f"plots/{NAME}/decision_line.png", line_fig)
    stop = f"converged at epoch {result.converged_epoch}" if metrics["converged"] else f"{max_epochs} epochs"
    print(f"perceptron: {stop}, train accuracy {metrics['train']['accuracy']:.3f}, "
          f"test accuracy {metrics['test']['accuracy']:.3f}")


if __name__ == "__main__":
    run(main)
