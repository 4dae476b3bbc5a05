"""Stage `mri_data`: the MRI slices of report 001, synthetic phantoms or the Kaggle folder.

Reads params `data.mri` (`source: synthetic` generates phantom slices offline;
`source: folder` decodes the Kaggle "Alzheimer's Dataset" at `folder.path`),
then holds out `validation_fraction` of the train slices as a validation split
(`validation: block`, a contiguous block per class, the top levels of every
brain; or `by_brain`, whole brains, on the Kaggle folder: mri.split_validation). Writes
data/mri/raw/{train,validation,test}_{images,labels}.npy (uint8 slices, class
indices) and info.json, and plots/mri_data/{data_stats.json (counts per class,
skipped files, empty class folders), examples.png, skipped.csv}.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd

from nnlab import memory
from nnlab.cli import run, stage_parser
from nnlab.datasets import mri, mri_phantom
from nnlab.io import StageOutputs, dumps_json
from nnlab.params import Section, load_params
from nnlab.plotting import plt

DATA_DIR = "data/mri/raw"
PLOT_DIR = "plots/mri_data"
SOURCES = ("synthetic", "folder")
#: Copies of the slices held at once: decoded, cut into train and validation.
SLICE_COPIES = 3
#: float64 arrays of a slice's size that rendering one phantom holds (coordinates, radii, masks).
RENDER_ARRAYS = 30
DESCRIPTION = {"synthetic": "synthetic phantom slices (not real MRI)",
               "folder": "Kaggle Alzheimer's Dataset (4 class of Images)"}


def build(cfg: Section) -> tuple[str, dict[str, mri.Slices]]:
    source = cfg.str("source", choices=SOURCES)
    validation_fraction = cfg.float("validation_fraction", positive=True, max=0.5)
    validation = cfg.str("validation", choices=mri.VALIDATION_SPLITS)
    synthetic = cfg.section("synthetic")
    phantom_options = dict(
        n_train=synthetic.int("n_train", min=4), n_test=synthetic.int("n_test", min=4),
        height=synthetic.int("height", min=8), width=synthetic.int("width", min=8),
        noise=synthetic.float("noise", min=0), severity_spread=synthetic.float("severity_spread", min=0),
        seed=synthetic.int("seed", min=0),
    )
    synthetic.check_all_used()
    folder = cfg.section("folder")
    folder_options = dict(height=folder.int("height", min=1), width=folder.int("width", min=1),
                          on_bad_file=folder.str("on_bad_file", choices=mri.BAD_FILE_POLICIES))
    root = folder.str("path")
    folder.check_all_used()
    cfg.check_all_used()
    if source == "synthetic":
        size = (phantom_options["height"], phantom_options["width"])
        memory.check(*(memory.array(synthetic, f"n_{split}", (phantom_options[f"n_{split}"], *size), 1,
                                    f"{phantom_options[f'n_{split}']:,} {split} slices of {size[0]}x{size[1]}",
                                    copies=SLICE_COPIES)
                       for split in mri.FOLDER_SPLITS),
                     memory.array(synthetic, "height", size, 8, "rendering a slice", copies=RENDER_ARRAYS))
    else:
        files = mri.count_files(root)
        memory.check(memory.array(folder, "height", (files, folder_options["height"], folder_options["width"]), 1,
                                  f"{files:,} slices of {folder_options['height']}x{folder_options['width']}",
                                  copies=SLICE_COPIES))
    if source == "synthetic":
        loaded = mri_phantom.phantom_splits(**phantom_options)
    else:
        loaded = {split: mri.load_folder(root, split, **folder_options) for split in mri.FOLDER_SPLITS}
    # Each phantom is a brain of its own, so whole brains are the last slices of each class: the block.
    brains = mri.KAGGLE_BRAINS if validation == "by_brain" and source == "folder" else None
    train, held_out = mri.split_validation(loaded["train"], validation_fraction, brains)
    return source, {"train": train, "validation": held_out, "test": loaded["test"]}


def examples_figure(slices: mri.Slices, title: str, per_class: int = 4):
    """A row of train slices per class (rows for absent classes stay empty)."""
    fig, axes = plt.subplots(len(mri.CLASS_NAMES), per_class, figsize=(1.6 * per_class, 1.8 * len(mri.CLASS_NAMES)),
                             squeeze=False)
    for label, row in enumerate(axes):
        picks = np.flatnonzero(slices.labels == label)[:per_class]
        for ax, index in zip(row, picks):
            ax.imshow(slices.images[index], cmap="gray", vmin=0, vmax=255)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(mri.CLASS_NAMES[label], fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    source, splits = build(load_params(args.params).section("data").section("mri"))
    info = {"source": source, "description": DESCRIPTION[source], "class_names": list(mri.CLASS_NAMES)}
    skipped = [row for split in splits.values() for row in split.skipped]
    empty_folders = [folder for split in splits.values() for folder in split.empty_folders]
    for folder in empty_folders:
        print(f"warning: {folder}: empty class folder", file=sys.stderr)
    if skipped:
        print(f"warning: skipped {len(skipped)} unusable file(s) (on_bad_file: skip), listed in {PLOT_DIR}/skipped.csv",
              file=sys.stderr)
    counts = {split: {"count": len(s.labels), "per_class": s.class_counts()} for split, s in splits.items()}
    with StageOutputs() as out:
        directory = out.directory(DATA_DIR)
        for split, slices in splits.items():
            np.save(directory / f"{split}_images.npy", slices.images)
            np.save(directory / f"{split}_labels.npy", slices.labels)
        (directory / "info.json").write_text(dumps_json(info), encoding="utf-8")
        out.json(f"{PLOT_DIR}/data_stats.json", {"source": source, **counts, "skipped": len(skipped), "empty_class_folders": empty_folders})
        out.csv(f"{PLOT_DIR}/skipped.csv", pd.DataFrame(skipped, columns=["file", "reason"]))
        out.figure(f"{PLOT_DIR}/examples.png", examples_figure(splits["train"], f"MRI train slices: {info['description']}"))
    print(f"mri_data: {info['description']}: {json.dumps(counts)}; skipped {len(skipped)} file(s)")


if __name__ == "__main__":
    run(main)
