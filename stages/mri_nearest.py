"""Stage `mri_nearest`: a nearest-neighbour lookup among the MRI training slices (a reference row).

Beyond the report: no learning at all. Each slice takes the class of the training slice whose
pixels, average-pooled `pool` x `pool`, it correlates with most (nnlab.models.mri_nearest), so that
every run shows what recognising the brain gives on this split. As the networks are, it is scored
twice: the validation slices looked up among the train slices (what a model is chosen on), and the
test slices among train and validation together (as the refitted networks train). Reads
data/mri/raw/ and params `mri_nearest` (pool, chunk_size). Writes metrics/mri_nearest.json (the
headline: train accuracy, here leave-one-out over train and validation, each slice looked up among
the others; test accuracy and macro-F1), plots/mri_nearest/evaluation.json (every score; a lookup
has no loss, so the losses are null, and trains for 0 epochs), confusion.json (test split) and
validation.json (validation accuracy, macro-F1 and recall per class).
"""
from __future__ import annotations

import math

from nnlab.cli import run, stage_parser
from nnlab.datasets import mri
from nnlab.io import StageOutputs
from nnlab.metrics import confusion_records
from nnlab.models import mri_nearest
from nnlab.params import load_params
from nnlab.results import TrainResult, classifier_scores, model_evaluation, write_evaluation

RAW_DIR = "data/mri/raw"
NAME = "mri_nearest"


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    cfg = load_params(args.params).section(NAME)
    pool = cfg.int("pool", min=1)
    chunk_size = cfg.int("chunk_size", min=1)
    cfg.check_all_used()

    info = mri.read_info(RAW_DIR)
    raw = mri.open_arrays(RAW_DIR, tuple(f"{split}_{part}" for split in mri.SPLITS for part in ("images", "labels")))
    height, width = raw["train_images"].shape[1:]
    if pool > min(height, width):
        raise cfg.fail("pool", pool, f"larger than the {height}x{width} slices")
    rows = {split: mri_nearest.unit_rows(raw[f"{split}_images"], pool, chunk_size)
            for split in mri.SPLITS}
    labels = {split: raw[f"{split}_labels"][:] for split in mri.SPLITS}
    train = [(rows["train"], labels["train"])]
    everything = [*train, (rows["validation"], labels["validation"])]
    names = info["class_names"]

    validation_predicted = mri_nearest.nearest_labels(rows["validation"], train, chunk_size)
    test_predicted = mri_nearest.nearest_labels(rows["test"], everything, chunk_size)
    left_out = [mri_nearest.nearest_labels(rows[split], everything, chunk_size, themselves_from=start)
                for split, start in (("train", 0), ("validation", len(labels["train"])))]
    train_scores = classifier_scores([*labels["train"], *labels["validation"]], [*left_out[0], *left_out[1]],
                                     names, math.nan, train=True)
    evaluation = model_evaluation(info["source"], TrainResult("epoch").run_record(), train_scores,
                                  classifier_scores(labels["test"], test_predicted, names, math.nan))
    validation = classifier_scores(labels["validation"], validation_predicted, names, math.nan)
    with StageOutputs() as out:
        write_evaluation(out, NAME, evaluation, confusion_records(labels["test"], test_predicted, names))
        out.json(f"plots/{NAME}/validation.json", {key: validation[key] for key in ("accuracy", "macro_f1", "recall")})
    print(f"{NAME}: validation accuracy {validation['accuracy']:.4f}, macro-F1 {validation['macro_f1']:.4f} "
          f"(looked up among train); test accuracy {evaluation['test']['accuracy']:.4f}, "
          f"macro-F1 {evaluation['test']['macro_f1']:.4f} (among train + validation); "
          f"leave-one-out accuracy {train_scores['accuracy']:.4f} ({info['description']})")


if __name__ == "__main__":
    run(main)
