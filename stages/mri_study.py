"""Stages `mri_lr_study` and `mri_batch_study`: one network trained at several learning rates or batch sizes.

Run as `python -m stages.mri_study --study lr` (params `mri_lr_study`: the
report's CNN3 at lr 1e-8, 0.01 and 10) or `--study batch` (params
`mri_batch_study`: batch sizes 5, 15 and 100). Reads data/mri/normalized/ and
`train`. Writes metrics/mri_<study>_study.json (the best run and how many
diverged) and plots/mri_<study>_study/{table.csv (one row per run: accuracies,
macro-F1, every class's recall, seconds; a diverged run's scores are empty),
history.csv (a row per run and epoch: train and test loss and accuracy; a
diverged run's last row marks the epoch it diverged at), curves.png}.
"""
from __future__ import annotations

import sys
import time

from nnlab import memory, plotting
from nnlab.cli import Progress, run, stage_parser
from nnlab.datasets import mri
from nnlab.io import StageOutputs
from nnlab.models import mri_nets
from nnlab.params import learning_rate, load_params, seed, train_settings
from nnlab.results import SCORE_COLUMNS, long_history, study_summary
from nnlab.runtime import torch_device
from nnlab.torch_train import CLASS_WEIGHTS, run_metrics

DATA_DIR = "data/mri/normalized"


def run_settings(study: str, params, cfg) -> dict[str, dict]:
    """``{run label: training options}`` for the study's values."""
    common = dict(epochs=cfg.int("epochs", min=1), class_weight=cfg.str("class_weight", choices=CLASS_WEIGHTS),
                  max_loss=cfg.float("max_loss", positive=True))
    if study == "lr":
        batch_size = cfg.batch_size("batch_size", sys.maxsize, allow_full=False)
        return {f"lr={lr:g}": dict(common, lr=lr, batch_size=batch_size)
                for lr in cfg.float_list("lrs", positive=True)}
    lr = learning_rate(params, cfg)
    sizes = cfg.int_list("batch_sizes", min=1)
    return {f"batch={size}": dict(common, lr=lr, batch_size=size) for size in sizes}


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--study", required=True, choices=("lr", "batch"))
    args = parser.parse_args(argv)
    memory.return_freed_blocks()
    params = load_params(args.params)
    name = f"mri_{args.study}_study"
    cfg = params.section(name)
    model = cfg.str("model", choices=sorted(mri_nets.MODELS))
    settings = run_settings(args.study, params, cfg)
    cfg.check_all_used()
    largest = max(options["batch_size"] for options in settings.values())
    batch_key = "batch_size" if args.study == "lr" else "batch_sizes"
    mri_nets.check_training_memory(f"{DATA_DIR}/train_x.npy", (cfg, "model"), (cfg, batch_key), model,
                                   batch=largest, optimizer="sgd")
    training = train_settings(params)
    device = torch_device(training.device)
    # Parameters are checked before the data are read, so a typo is never reported as missing data.
    splits, info = mri.normalized_datasets(DATA_DIR)
    train, test = splits["train"], splits["test"]
    if largest > len(train):
        raise cfg.fail(batch_key, largest, f"larger than the {len(train)} training samples")

    table, histories, diverged_at = [], {}, {}
    progress = Progress(len(settings), name, unit="run", lines_on_terminal=True)
    for label, options in settings.items():
        started = time.perf_counter()
        net, result = mri_nets.fit(model, train, test, seed=seed(params), device=device, desc=f"{model} {label}",
                                   threads=training.threads, **options)
        evaluation, _ = run_metrics(net, result, train, test, info["class_names"], device, info["source"])
        test_scores = evaluation["test"]
        table.append({"run": label, "model": model, "lr": options["lr"], "batch_size": options["batch_size"],
                      "diverged": evaluation["diverged"], "train_accuracy": evaluation["train"]["accuracy"],
                      "test_accuracy": test_scores["accuracy"], "test_macro_f1": test_scores["macro_f1"],
                      **{f"test_recall_{name}": recall for name, recall in test_scores["recall"].items()},
                      "seconds": time.perf_counter() - started})
        histories[label], diverged_at[label] = result.history, result.diverged_at
        progress.update()
        progress.report(label, diverged=evaluation["diverged"], test_accuracy=test_scores["accuracy"])
    progress.close()

    history = long_history(histories, diverged_at, "epoch", SCORE_COLUMNS)
    with StageOutputs() as out:
        out.json(f"metrics/{name}.json", study_summary(table, "run", source=info["source"]))
        out.csv(f"plots/{name}/table.csv", table)
        out.csv(f"plots/{name}/history.csv", history)
        out.figure(f"plots/{name}/curves.png", plotting.run_curves(
            history, "epoch", "test_accuracy", title=f"{model}: test accuracy per epoch, {info['description']}",
            ylabel="test accuracy"))


if __name__ == "__main__":
    run(main)
