"""Stage `mri_evaluate@<name>`: score a trained MRI network (report 001).

Run as `python -m stages.mri_evaluate --model <name>`. Reads models/mri_<name>/,
data/mri/normalized/ and plots/mri_<name>/history.csv; writes
metrics/mri_<name>.json (the headline: train and test accuracy, test
macro-F1: accuracy alone misleads on classes of 50/35/14/1 %),
plots/mri_<name>/evaluation.json (every score: losses, per-class recall, how
the run ended), plots/mri_<name>/confusion.json (test split), loss.png and accuracy.png (per
epoch; `dvc plots show` draws the validation columns of history.csv). Retrains
nothing; runs on the CPU, so the figures do not depend on
where the model was trained.
"""
from __future__ import annotations

import pandas as pd
import torch

from nnlab import memory, plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import mri
from nnlab.io import StageOutputs
from nnlab.metrics import confusion_records
from nnlab.models import mri_nets
from nnlab.results import TrainResult, write_evaluation
from nnlab.torch_train import run_metrics

DATA_DIR = "data/mri/normalized"


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", required=True, choices=sorted(mri_nets.MODELS))
    args = parser.parse_args(argv)
    memory.return_freed_blocks()
    name = f"mri_{args.model}"
    model, spec = mri_nets.load_model(f"models/{name}", f"mri_model@{args.model}")
    splits, info = mri.normalized_datasets(DATA_DIR)
    train, test = splits["train"], splits["test"]
    history = pd.read_csv(f"plots/{name}/history.csv").to_dict("records")
    result = TrainResult.from_run_record(spec["run"], history)
    evaluation, predicted = run_metrics(model, result, train, test, spec["class_names"], torch.device("cpu"),
                                        spec["source"])
    figures = plotting.split_curves(history, x="epoch", metrics=("loss", "accuracy"),
                                    title=f"{args.model} on {info['description']}")
    with StageOutputs() as out:
        write_evaluation(out, name, evaluation,
                         confusion_records(test.labels, predicted, spec["class_names"]))
        for metric, figure in figures.items():
            out.figure(f"plots/{name}/{metric}.png", figure)
    print(f"{name}: diverged" if evaluation["diverged"] else
          f"{name}: test accuracy {evaluation['test']['accuracy']:.4f}, "
          f"macro-F1 {evaluation['test']['macro_f1']:.4f}")


if __name__ == "__main__":
    run(main)
