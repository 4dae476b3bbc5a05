"""Stage `mri_model@<name>`: train one network of report 001 on the normalised MRI slices.

Run as `python -m stages.mri_train --model <name>` with name one of
simple_nn1, simple_nn2, cnn1, cnn_improved. Reads data/mri/normalized/ and
params `mri_<name>` and `train`. Writes models/mri_<name>/ (the weights and
what rebuilds the network) and plots/mri_<name>/history.csv (per epoch: train
and test loss and accuracy, and the validation split's loss, accuracy and
macro-F1, the figures a model is chosen on). Stage `mri_evaluate@<name>`
scores the model.

The validation run trains on the train split and scores the validation split
after every epoch. With `refit: true` a final run trains the same recipe from
the same seed on train and validation together, as the report trained on the
whole Kaggle training split, and its model is the one saved; history.csv then
has the final run's train and test columns beside the validation run's
validation columns (nnlab.models.mri_nets.fit_and_refit).

checkpoints/mri_<name>/ holds each run after its last completed epoch
(validation_run.pt, final_run.pt): a run killed or interrupted resumes from it
when rerun with the same params and data (nnlab/checkpoint.py). dvc.yaml
declares the folder `persist: true`, so DVC keeps it for the rerun.
"""
from __future__ import annotations

import sys

import pandas as pd

from nnlab.checkpoint import Checkpoint
from nnlab.cli import run, stage_parser
from nnlab import memory
from nnlab.datasets import mri
from nnlab.io import StageOutputs
from nnlab.models import mri_nets
from nnlab.params import learning_rate, load_params, seed, train_settings
from nnlab.runtime import torch_device
from nnlab.torch_train import CLASS_WEIGHTS, LR_SCHEDULES, OPTIMIZERS

DATA_DIR = "data/mri/normalized"
HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "validation_loss", "validation_accuracy",
                   "validation_macro_f1", "test_loss", "test_accuracy"]


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, choices=sorted(mri_nets.MODELS))
    args = parser.parse_args(argv)
    memory.return_freed_blocks()
    params = load_params(args.params)
    cfg = params.section(f"mri_{args.model}")
    options = dict(epochs=cfg.int("epochs", min=1), lr=learning_rate(params, cfg),
                   batch_size=cfg.batch_size("batch_size", sys.maxsize, allow_full=False),
                   class_weight=cfg.str("class_weight", choices=CLASS_WEIGHTS),
                   max_loss=cfg.float("max_loss", positive=True),
                   optimizer=cfg.str("optimizer", choices=OPTIMIZERS), weight_decay=cfg.float("weight_decay", min=0),
                   lr_schedule=cfg.str("lr_schedule", choices=LR_SCHEDULES),
                   shift_pixels=cfg.int("shift_pixels", min=0), intensity_jitter=cfg.float("intensity_jitter", min=0))
    refit = cfg.bool("refit")
    cfg.check_all_used()
    train_file = f"{DATA_DIR}/train_x.npy"
    mri_nets.check_training_memory(train_file, (None, train_file), (cfg, "batch_size"), args.model,
                                   batch=options["batch_size"], optimizer=options["optimizer"])
    settings = train_settings(params)
    device = torch_device(settings.device)
    # Parameters are checked before the data are read, so a typo is never reported as missing data.
    splits, info = mri.normalized_datasets(DATA_DIR)
    train = splits["train"]
    cfg.batch_size("batch_size", len(train), allow_full=False)

    name = f"mri_{args.model}"
    checkpoints = tuple(Checkpoint(f"checkpoints/{name}/{run_name}.pt") for run_name in ("validation_run", "final_run"))
    model, result = mri_nets.fit_and_refit(args.model, train, splits["validation"], splits["test"], refit=refit,
                                           checkpoints=checkpoints, seed=seed(params), device=device,
                                           threads=settings.threads, **options)
    if not refit:   # an earlier refit's final run would otherwise stay in the folder DVC hashes
        checkpoints[1].path.unlink(missing_ok=True)
    with StageOutputs() as out:
        mri_nets.save_model(out.directory(f"models/{name}"), model, args.model,
                            input_shape=tuple(train.features.shape[1:]), class_names=info["class_names"],
                            source=info["source"], options={**options, "refit": refit}, result=result)
        out.csv(f"plots/{name}/history.csv", pd.DataFrame(result.history, columns=HISTORY_COLUMNS))
    final = result.history[-1] if result.history else {}
    trained_on = "train + validation" if refit else "train"
    state = f"diverged at epoch {result.diverged_at}" if result.diverged else \
        (f"validation accuracy {final['validation_accuracy']:.4f}, macro-F1 {final['validation_macro_f1']:.4f} "
         f"(trained on train), test accuracy {final['test_accuracy']:.4f} (trained on {trained_on}) "
         f"after {result.trained} epochs")
    print(f"{name}: {state} ({info['description']}) on {device}")


if __name__ == "__main__":
    run(main)
