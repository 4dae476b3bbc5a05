"""Stage `mlp_moons`: train the numpy MLP of report 002 §3 on moons (1000 samples, 80/20).

Linear - ReLU - ... - Linear to 2 class scores, softmax fused into the
cross-entropy, plain SGD (full batch by default, as the report's part 2).

Reads data/generated/moons_1000.npz and params `mlp_moons` (+ `train` for the
seed and lr where the section's own are null); writes models/mlp_moons/ (the
weights and what rebuilds the net) and plots/mlp_moons/history.csv (step, epoch,
train/test loss and accuracy every `eval_every` steps). Stage
`evaluate_2d@mlp_moons` scores the saved model.
"""
from __future__ import annotations

import sys

from nnlab import memory
from nnlab.cli import run, stage_parser
from nnlab.datasets.synthetic import load_split
from nnlab.models import mlp
from nnlab.params import learning_rate, load_params, seed
from nnlab.runtime import numpy_rng

INPUT = "data/generated/moons_1000.npz"
NAME = "mlp_moons"
CLASSES = [0, 1]


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    hidden = cfg.int_list("hidden_units")
    lr = learning_rate(params, cfg)
    steps = cfg.int("steps", min=1)
    eval_every = cfg.int("eval_every", min=1)
    cfg.batch_size("batch_size", sys.maxsize)  # type and >= 1 now, before reading data; the bound below
    init = cfg.str("init", choices=mlp.INITS)
    init_std = cfg.float("init_std", positive=True)
    run_seed = seed(params, cfg)
    cfg.check_all_used()
    memory.check(memory.numpy_mlp(cfg, "hidden_units", [2, *hidden, len(CLASSES)],
                                  memory.first_dimension(INPUT, "X_train", "X_test")),
                 memory.history(cfg, "steps", steps / eval_every))
    data = load_split(INPUT)
    batch_size = cfg.batch_size("batch_size", len(data.y_train))

    rng = numpy_rng(run_seed)
    architecture = {"sizes": [data.X_train.shape[1], *hidden, len(CLASSES)], "activation": "relu",
                    "output": None, "loss": "cross_entropy"}
    model = mlp.Classifier(architecture, rng=rng, init=init, init_std=init_std)
    result = model.net.train(data.X_train, data.y_train, model.loss_function, lr=lr, steps=steps,
                             batch_size=batch_size, eval_every=eval_every, rng=rng, X_test=data.X_test,
                             y_test=data.y_test, desc=NAME)
    print(mlp.write_run(NAME, model, result, classes=CLASSES, data=INPUT,
                        params={"lr": lr, "steps": steps, "batch_size": batch_size, "eval_every": eval_every,
                                "init": init, "init_std": init_std, "seed": run_seed}))


if __name__ == "__main__":
    run(main)
