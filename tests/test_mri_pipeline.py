"""The MRI stages end to end on tiny params (the shared baseline of tests/pipeline_repo.py),
plus a broken folder refused cleanly."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from PIL import Image

from conftest import run_stage, tiny_params

pytest_plugins = ["pipeline_repo"]


def strict_json(path):
    def reject(constant):
        raise ValueError(f"{path}: {constant} is not valid JSON")
    return json.loads(path.read_text(), parse_constant=reject)


def test_stages_end_to_end(baseline):
    """What the baseline's `dvc repro` wrote (a forced rerun gives the same bytes: tests/test_faults.py)."""
    repo = baseline.path
    normalized = np.load(repo / "data/mri/normalized/train_x.npy", mmap_mode="r")
    validation = np.load(repo / "data/mri/normalized/validation_x.npy", mmap_mode="r")
    # tests/tiny_params.yaml: 130 train phantoms; validation_fraction 0.2 holds out round(0.2 n) of each class.
    assert normalized.shape == (104, 3, 40, 36) and normalized.dtype == np.float32
    assert validation.shape == (26, 3, 40, 36)
    counts = strict_json(repo / "plots/mri_data/data_stats.json")
    assert counts["train"]["count"] == 104 and counts["validation"]["count"] == 26
    assert json.loads((repo / "data/mri/normalized/info.json").read_text())["source"] == "synthetic"
    assert (repo / "plots/mri_normalize/sample.png").stat().st_size > 0
    assert set(strict_json(repo / "metrics/mri_simple_nn2.json")["test"]) == {"accuracy", "macro_f1"}
    evaluation = strict_json(repo / "plots/mri_simple_nn2/evaluation.json")
    assert set(evaluation["test"]) == {"loss", "accuracy", "macro_f1", "recall"}
    history = (repo / "plots/mri_cnn_improved/history.csv").read_text().splitlines()
    assert history[0] == ("epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,"
                          "validation_macro_f1,test_loss,test_accuracy") and len(history) == 2
    confusion = json.loads((repo / "plots/mri_simple_nn2/confusion.json").read_text())
    assert len(confusion) == 40 and set(confusion[0]) == {"actual", "predicted"}

    nearest = strict_json(repo / "plots/mri_nearest/evaluation.json")
    assert nearest["trained"] == 0 and nearest["test"]["loss"] is None and 0 <= nearest["test"]["accuracy"] <= 1
    assert set(strict_json(repo / "plots/mri_nearest/validation.json")) == {"accuracy", "macro_f1", "recall"}
    summary = pd.read_csv(repo / "plots/mri_summary/table.csv", index_col="run")
    assert summary.loc["nearest", "test_accuracy"] == nearest["test"]["accuracy"]

    # A diverged run is marked, with empty scores, and counted (tests/tiny_params.yaml: lr 10000 blows up).
    runs = pd.read_csv(repo / "plots/mri_lr_study/table.csv", index_col="run")
    assert not runs.loc["lr=0.01", "diverged"] and runs.loc["lr=0.01", "test_accuracy"] >= 0
    assert runs.loc["lr=10000", "diverged"] and pd.isna(runs.loc["lr=10000", "test_accuracy"])
    assert strict_json(repo / "metrics/mri_lr_study.json") == {
        "source": "synthetic", "best": {"run": runs["test_accuracy"].idxmax(), "test_accuracy": runs["test_accuracy"].max()},
        "diverged_runs": 1}


def test_broken_folder_is_refused_with_the_file_named(tmp_path):
    for split in ("train", "test"):
        folder = tmp_path / "kaggle" / split / "NonDemented"
        folder.mkdir(parents=True)
        (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    params = tiny_params()
    params["data"]["mri"]["source"] = "folder"
    params["data"]["mri"]["folder"]["path"] = str(tmp_path / "kaggle")
    result = run_stage("mri_data", params, tmp_path)
    assert result.returncode == 2
    assert "broken.jpg: unreadable image" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_empty_class_folder_is_a_warning_recorded_in_the_metrics(tmp_path):
    for split in ("train", "test"):
        for name in ("NonDemented", "MildDemented"):
            folder = tmp_path / "kaggle" / split / name
            folder.mkdir(parents=True)
            if not (split == "test" and name == "MildDemented"):
                for number in range(3):   # 3 train slices per class: the validation split takes one of them
                    Image.fromarray(np.full((16, 12), 90, dtype=np.uint8)).save(folder / f"{number}.jpg")
    params = tiny_params()
    params["data"]["mri"]["source"] = "folder"
    params["data"]["mri"]["folder"].update(path=str(tmp_path / "kaggle"), height=16, width=12)
    result = run_stage("mri_data", params, tmp_path)
    assert result.returncode == 0, result.stderr
    empty = str(tmp_path / "kaggle" / "test" / "MildDemented")
    assert f"warning: {empty}: empty class folder" in result.stderr.splitlines()
    assert strict_json(tmp_path / "plots/mri_data/data_stats.json")["empty_class_folders"] == [empty]
