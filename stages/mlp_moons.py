"""Stage `mlp_moons`: the numpy MLP of report 002 §3 on moons (1000 samples, 80/20).

Linear - ReLU - ... - Linear to 2 class scores, softmax fused into the
cross-entropy, plain SGD (full batch by default, as the report's part 2).

Reads data/generated/moons_1000.npz and params `mlp_moons` (+ `train` for the
seed, and for lr when the section's lr is null); writes metrics/mlp_moons.json,
plots/mlp_moons/history.csv (step, train/test loss and accuracy every
`eval_every` steps) and plots/mlp_moons/{accuracy,loss,decision_surface}.png.
"""
from __future__ import annotations

import sys

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import load_split
from nnlab.io import StageOutputs
from nnlab.models import mlp
from nnlab.nn import CrossEntropy
from nnlab.params import learning_rate, load_params, seed
from nnlab.runtime import numpy_rng

INPUT = "data/generated/moons_1000.npz"
NAME = "mlp_moons"
N_CLASSES = 2


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    hidden = cfg.int_list("hidden_units")
    lr = learning_rate(params, cfg)
    steps = cfg.int("steps", min=1)
    eval_every = cfg.int("eval_every", min=1)
    cfg.batch_size("batch_size", sys.maxsize)  # type and >= 1 now, before reading data; the bound below
    initialiser = mlp.read_init(cfg)
    cfg.check_all_used()
    data = load_split(INPUT)
    batch_size = cfg.batch_size("batch_size", len(data.y_train))

    rng = numpy_rng(seed(params))
    model = mlp.mlp([data.X_train.shape[1], *hidden, N_CLASSES], rng=rng, init=initialiser)
    loss = CrossEntropy()
    result = model.train(data.X_train, data.y_train, loss, lr=lr, steps=steps, batch_size=batch_size,
                         eval_every=eval_every, rng=rng, X_test=data.X_test, y_test=data.y_test, desc=NAME)
    summary = mlp.summary(result)
    title = f"MLP {model}, lr {lr:g}, batch {batch_size or 'full'}"
    figures = plotting.split_curves(result.history, title="moons MLP")
    surface = plotting.decision_surface(
        lambda X: loss.probabilities(model.forward(X))[:, 1], data.X_test, data.y_test,
        title=f"{title}\ntest accuracy {summary['test']['accuracy']}")

    with StageOutputs() as out:
        out.json(f"metrics/{NAME}.json", summary)
        out.csv(f"plots/{NAME}/history.csv", result.history)
        for metric, fig in figures.items():
            out.figure(f"plots/{NAME}/{metric}.png", fig)
        out.figure(f"plots/{NAME}/decision_surface.png", surface)
    print(f"{NAME}: {model}: train accuracy {summary['train']['accuracy']}, "
          f"test accuracy {summary['test']['accuracy']}{' (diverged)' if result.diverged else ''}")


if __name__ == "__main__":
    run(main)
