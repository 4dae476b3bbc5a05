"""Stage `mri_<model>`: train one network of report 001 on the normalised MRI slices.

Run as `python -m stages.mri_train --model <name>` with name one of
simple_nn1, simple_nn2, cnn1, cnn_improved. Reads data/mri/normalized/ and
params `mri_<name>` and `train`. Writes metrics/mri_<name>.json (loss,
accuracy, macro-F1, per-class recall and confusion matrix for train and test)
and plots/mri_<name>/{history.csv,curves.png,confusion_train.json,confusion_test.json}.
"""
from __future__ import annotations

import sys
import time

import pandas as pd

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import mri
from nnlab.io import StageOutputs
from nnlab.models import mri_nets
from nnlab.params import learning_rate, load_params, seed, train_settings
from nnlab.runtime import torch_device
from nnlab.torch_train import CLASS_WEIGHTS

DATA_DIR = "data/mri/normalized"
HISTORY_COLUMNS = ["epoch", "train_loss", "test_loss", "test_accuracy"]


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, choices=sorted(mri_nets.MODELS))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    cfg = params.section(f"mri_{args.model}")
    options = dict(epochs=cfg.int("epochs", min=1), lr=learning_rate(params, cfg),
                   batch_size=cfg.batch_size("batch_size", sys.maxsize, allow_full=False),
                   class_weight=cfg.str("class_weight", choices=CLASS_WEIGHTS),
                   max_loss=cfg.float("max_loss", positive=True))
    cfg.check_all_used()
    device = torch_device(train_settings(params).device)
    # Parameters are checked before the data are read, so a typo is never reported as missing data.
    train, test, info = mri.normalized_datasets(DATA_DIR)
    cfg.batch_size("batch_size", len(train), allow_full=False)

    started = time.perf_counter()
    metrics, result, confusion = mri_nets.fit(args.model, train, test, info["class_names"],
                                              seed=seed(params), device=device, **options)
    seconds = time.perf_counter() - started
    name = f"mri_{args.model}"
    with StageOutputs() as out:
        out.json(f"metrics/{name}.json", metrics)
        out.csv(f"plots/{name}/history.csv", pd.DataFrame(result.history, columns=HISTORY_COLUMNS))
        out.figure(f"plots/{name}/curves.png",
                   plotting.split_curves(result.history, x="epoch", metrics=("loss",),
                                         title=f"{args.model} on {info['description']}, cross-entropy")["loss"])
        for split in mri.SPLITS:
            out.json(f"plots/{name}/confusion_{split}.json", confusion.get(split, []))
    state = "DIVERGED" if metrics["diverged"] else f"test accuracy {metrics['test']['accuracy']:.4f}"
    print(f"{name}: {state} ({info['description']}), {seconds:.1f} s on {device}")


if __name__ == "__main__":
    run(main)
