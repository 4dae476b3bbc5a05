"""Stage `mri_normalize`: per-pixel standardisation of the MRI slices, fitted on train only.

Reads data/mri/raw/ and params `mri_normalize`. Writes
data/mri/normalized/{train,validation,test}_x.npy (float32, N x channels x H x W,
read a batch at a time by the later stages), {train,validation,test}_y.npy and info.json; models/mri_scaler/
(the per-pixel mean and scale, channels and slice size, which
`python -m nnlab.predict mri` applies to new slices); plots/mri_normalize/sample.png (one standardised slice,
cividis as in the report) and plots/mri_normalize/resources.csv (the sizes of
the normalised arrays; wall time and peak memory go to the run log of
nnlab.cli, since they change from run to run).
"""
from __future__ import annotations

import numpy as np

from nnlab import images, memory
from nnlab.cli import run, stage_parser
from nnlab.datasets import mri
from nnlab.io import StageOutputs, dumps_json
from nnlab.params import load_params
from nnlab.plotting import plt

RAW_DIR = "data/mri/raw"
DATA_DIR = "data/mri/normalized"
SCALER_DIR = "models/mri_scaler"
PLOT_DIR = "plots/mri_normalize"


def sample_figure(image: np.ndarray, label: str, title: str):
    fig, ax = plt.subplots(figsize=(4, 4.5))
    shown = ax.imshow(image, cmap="cividis")
    fig.colorbar(shown, ax=ax, fraction=0.046, label="standardised intensity")
    ax.set(title=f"{title}\nclass {label}", xticks=[], yticks=[])
    ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    cfg = load_params(args.params).section("mri_normalize")
    channels = cfg.int("channels", min=1, max=3)
    if channels == 2:
        raise cfg.fail("channels", channels, "must be 1 (grey) or 3 (the report's stacked grey)")
    chunk_size = cfg.int("chunk_size", min=1)
    sample_index = cfg.int("sample_index", min=0)
    cfg.check_all_used()
    shape = memory.npy_shape(f"{RAW_DIR}/train_images.npy")
    if shape is not None and len(shape) == 3:   # else reading the data says why
        rows = min(chunk_size, max((memory.npy_shape(f"{RAW_DIR}/{split}_images.npy") or (0,))[0]
                                   for split in mri.SPLITS))
        memory.check(memory.array(cfg, "chunk_size", (rows, *shape[1:]), images.chunk_bytes_per_pixel(channels),
                                  f"chunks of {rows} slices"))

    info = mri.read_info(RAW_DIR)
    raw = mri.open_arrays(RAW_DIR, tuple(f"{split}_{part}" for split in mri.SPLITS for part in ("images", "labels")))
    if sample_index >= len(raw["train_labels"]):
        raise cfg.fail("sample_index", sample_index, f"only {len(raw['train_labels'])} train slices")
    scaler = images.fit_pixel_scaler(raw["train_images"], chunk_size)
    with StageOutputs() as out:
        directory = out.directory(DATA_DIR)
        for split in mri.SPLITS:
            images.write_standardized(raw[f"{split}_images"], scaler, channels, chunk_size,
                                      directory / f"{split}_x.npy", desc=f"standardizing {split}")
            np.save(directory / f"{split}_y.npy", np.asarray(raw[f"{split}_labels"]))
        height, width = raw["train_images"].shape[1:]
        images.save_pixel_scaler(out.directory(SCALER_DIR), scaler, height=height, width=width, channels=channels,
                                 class_names=info["class_names"], source=info["source"])
        (directory / "info.json").write_text(dumps_json({**info, "channels": channels}), encoding="utf-8")

        sample = np.load(directory / "train_x.npy", mmap_mode="r")[sample_index, 0]
        label = info["class_names"][int(raw["train_labels"][sample_index])]
        out.figure(f"{PLOT_DIR}/sample.png",
                   sample_figure(sample, label, f"train slice {sample_index}, standardised: {info['description']}"))
        counts = {f"n_{split}": len(raw[f"{split}_labels"]) for split in mri.SPLITS}
        out.csv(f"{PLOT_DIR}/resources.csv", [{
            **counts, "channels": channels, "height": height, "width": width, "chunk_size": chunk_size,
            "output_mib": sum(counts.values()) * channels * height * width * 4 / 2**20}])
    print(f"mri_normalize: {'+'.join(str(n) for n in counts.values())} slices x {channels}x{height}x{width} float32")


if __name__ == "__main__":
    run(main)
