"""The IMDB stages end to end on tiny synthetic params (the shared baseline of
tests/pipeline_repo.py), a bad input refused in one line by the imdb_data stage,
and imdb_train's batch size bound."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from nnlab.datasets import imdb
from nnlab.errors import ParamError

pytest.register_assert_rewrite("pipeline_repo")
from conftest import deep_merge, run_stage, tiny_params  # noqa: E402
from pipeline_repo import clone_workspace  # noqa: E402

pytest_plugins = ["pipeline_repo"]


def imdb_params(**overrides) -> dict:
    return deep_merge(tiny_params(), overrides)


def test_stages_end_to_end(baseline):
    repo = baseline.path
    assert json.loads((repo / "plots/imdb_data/data_stats.json").read_text())["source"] == "synthetic"
    preprocess = json.loads((repo / "plots/preprocess/data_stats.json").read_text())
    assert preprocess["features"]["in_unit_interval"] and preprocess["train"]["reviews"] == 160
    samples = json.loads((repo / "plots/preprocess/samples.json").read_text())
    assert set(samples) == {"positive", "negative"} and "<br />" not in samples["positive"]["cleaned"]
    assert set(json.loads((repo / "metrics/imdb_train.json").read_text())["test"]) == {"accuracy", "f1"}
    evaluation = json.loads((repo / "plots/imdb_train/evaluation.json").read_text())
    assert set(evaluation["test"]) == {"accuracy", "loss", "f1", "recall"}
    confusion = json.loads((repo / "plots/imdb_train/confusion.json").read_text())
    assert len(confusion) == 40 and set(confusion[0]) == {"actual", "predicted"}
    for beyond_report in ("imdb_tuned", "imdb_logreg"):
        assert json.loads((repo / f"metrics/{beyond_report}.json").read_text())["source"] == "synthetic"
    validation = (repo / "plots/imdb_tuned/validation.csv").read_text().splitlines()
    assert validation[0] == "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,chosen"
    assert len(validation) == 1 + tiny_params()["imdb_tuned"]["epochs"]


def test_bad_csv_is_one_line_error(tmp_path):
    (tmp_path / "reviews.csv").write_text("review,sentiment\nGood,positive\nBad,so-so\n")
    params = imdb_params(data={"imdb": {"source": "csv", "path": str(tmp_path / "reviews.csv")}})
    result = run_stage("imdb_data", params, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "row 3: unknown sentiment 'so-so'" in result.stderr


def test_official_split_of_a_folder_without_test_is_one_line(tmp_path):
    """Was a KeyError: 'train' in the stage."""
    for polarity in ("pos", "neg"):
        folder = tmp_path / "aclImdb" / "train" / polarity
        folder.mkdir(parents=True)
        (folder / "1_5.txt").write_text("A film.")
    params = imdb_params(data={"imdb": {"source": "aclimdb", "path": str(tmp_path), "split": "official"}})
    result = run_stage("imdb_data", params, tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {tmp_path}: no reviews in aclImdb/test/neg/: the official split "
                                          "needs train/ and test/, each with pos/ and neg/ (or use data.imdb.split: "
                                          "random)"]


def test_batch_larger_than_the_training_reviews_is_refused(tmp_path, monkeypatch):
    """imdb_train accepted batch_size 100000. In this process: the stage's torch import is the slow part."""
    from stages import imdb_train

    monkeypatch.chdir(tmp_path)
    Path(imdb_train.FEATURES).mkdir(parents=True)
    X = sp.random(20, 5, density=0.5, format="csr", random_state=0)
    imdb.save_features(Path(imdb_train.FEATURES), X, X, np.arange(20) % 2, np.arange(20) % 2)
    Path("params.yaml").write_text(yaml.safe_dump(imdb_params(imdb_train={"batch_size": 100_000})))
    with pytest.raises(ParamError, match=r"^params\.yaml: imdb_train\.batch_size = 100000: larger than the 20 "
                                         r"training samples$"):
        imdb_train.main(["--params", "params.yaml"])


def test_piped_training_prints_a_line_per_epoch_and_writes_the_same_outputs(baseline, tmp_path):
    # run_stage pipes stdout, as DVC's queue and CI do: no tqdm bar, so one line per epoch instead.
    repo = clone_workspace(baseline.path, tmp_path / "workspace")
    (repo / "checkpoints" / "imdb_train.pt").unlink()   # else it resumes after its last epoch: no epoch lines
    result = run_stage("imdb_train", tiny_params(), repo)
    assert result.returncode == 0, result.stderr
    epochs = tiny_params()["imdb_train"]["epochs"]
    lines = re.findall(r"^imdb_train epoch (\d+)/(\d+): train_loss \S+, train_accuracy [\d.]+, test_loss \S+, test_accuracy [\d.]+ \| "
                       r"[\d.]+ s(?:, about [\d.]+ s left)?$", result.stdout, re.MULTILINE)
    assert lines == [(str(epoch), str(epochs)) for epoch in range(1, epochs + 1)], result.stdout
    first_epoch = next(line for line in result.stdout.splitlines() if line.startswith("imdb_train epoch 1/"))
    assert "left" in first_epoch or epochs == 1
    outputs = ["plots/imdb_train/history.csv", "plots/imdb_train/running_loss.csv",
               *(p.relative_to(repo).as_posix() for p in (repo / "models/imdb_train").iterdir())]
    for output in outputs:
        assert (repo / output).read_bytes() == (baseline.path / output).read_bytes(), output
