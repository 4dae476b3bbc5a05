"""Stage `separation`: perceptron accuracy against the distance between two clouds (report 002 §2, task 4).

Each case of params `separation.cases` is a fresh pair of Gaussian clouds:
the first centred at its `mean_pos`, the second at `separation.mean_neg`, both
with covariance `variance` times the identity. Reads params `separation`
(+ `train.lr` when `separation.lr` is null); writes plots/separation/table.csv
(case, mean distance, variance, train and test accuracy and loss, epochs),
plots/separation/accuracy.png and metrics/separation.json (the best case, how
many converged).
"""
from __future__ import annotations

import numpy as np

from nnlab import memory, plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import synthetic
from nnlab.io import StageOutputs
from nnlab.models import perceptron
from nnlab.params import learning_rate, load_params
from nnlab.results import study_summary

NAME = "separation"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(NAME)
    lr = learning_rate(params, cfg)
    max_epochs = cfg.int("max_epochs", min=1)
    n_per_class = cfg.int("n_per_class", min=2)
    test_fraction = cfg.float("test_fraction", min=0.01, max=0.99)
    data_seed = cfg.int("seed", min=0)
    mean_neg = np.array(cfg.float_list("mean_neg"))
    memory.check(memory.points(cfg, "n_per_class", 2 * n_per_class), memory.history(cfg, "max_epochs", max_epochs))
    cases = cfg.section("cases")
    if not cases.keys():
        raise cfg.fail("cases", {}, "must name at least one case")
    rows = []
    for name in cases.keys():
        case = cases.section(name)
        mean_pos = np.array(case.float_list("mean_pos"))
        if mean_pos.shape != mean_neg.shape:
            raise case.fail("mean_pos", mean_pos.tolist(), f"must have {len(mean_neg)} coordinates like mean_neg")
        variance = case.float("variance", positive=True)
        case.check_all_used()
        cov = (variance * np.eye(len(mean_neg))).tolist()
        data = synthetic.gaussians(n_per_class, mean_pos, mean_neg, cov, cov, test_fraction, data_seed)
        training = perceptron.train(data.X_train, data.y_train, data.X_test, data.y_test,
                                    lr=lr, max_epochs=max_epochs)
        final = training.result.final()
        rows.append({
            "case": name, "mean_distance": float(np.linalg.norm(mean_pos - mean_neg)), "variance": variance,
            "train_accuracy": final["train_accuracy"], "test_accuracy": final["test_accuracy"],
            "train_loss": final["train_loss"], "test_loss": final["test_loss"],
            "epochs": training.result.trained, "converged": training.converged,
        })
    cfg.check_all_used()
    # The perceptron never diverges; whether it separated the clouds is what varies.
    metrics = study_summary(rows, "case", source="generated") | {"converged_runs": sum(row["converged"] for row in rows)}
    with StageOutputs() as out:
        out.csv(f"plots/{NAME}/table.csv", rows)
        out.figure(f"plots/{NAME}/accuracy.png", plotting.separation(rows))
        out.json(f"metrics/{NAME}.json", metrics)
    for row in rows:
        print(f"{row['case']}: distance {row['mean_distance']:.2f}, variance {row['variance']:g}: "
              f"test accuracy {row['test_accuracy']:.3f} after {row['epochs']} epochs")


if __name__ == "__main__":
    run(main)
