"""Models as tracked artifacts, in clones of the shared tiny-params baseline (tests/pipeline_repo.py):
train -> models/ -> evaluate edges in the DAG, one metrics schema, evaluation without retraining,
and `python -m nnlab.predict` on whatever model the workspace holds."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

pytest.register_assert_rewrite("pipeline_repo")
from conftest import ROOT, stage_python, venv_env  # noqa: E402
from pipeline_repo import clone_workspace, load_strict, metrics_files, sh  # noqa: E402

from nnlab.results import check_model_evaluation, check_model_metrics  # noqa: E402

pytest_plugins = ["pipeline_repo"]

# The headline models: their train stage writes models/<name>, an evaluate stage writes metrics/<name>.json.
MODELS = {"perceptron": "perceptron", "mlp_moons": "mlp_moons", "bce_moons": "bce_moons", "tanh_mlp": "tanh_mlp",
          "mnist_linear": "mnist_linear", "mnist_torch": "mnist_torch", "imdb_train": "imdb_train",
          "imdb_tuned": "imdb_tuned", **{f"mri_{name}": f"mri_model@{name}" for name in ("simple_nn1", "simple_nn2", "cnn1", "cnn_improved")}}
#: Reference models fitted and scored in one stage: scikit-learn's logistic regression takes seconds
#: and has no per-epoch history, so a separate evaluate stage would save no retraining.
SCORED_WHERE_FITTED = {"imdb_logreg"}
#: A lookup among the training slices: nothing is fitted, so there is no model to save.
LOOKUPS = {"mri_nearest"}
REVIEWS = ["What a waste of two hours.", "Loved every minute"]


def stage_io(repo) -> dict[str, tuple[set[str], set[str]]]:
    """{stage: (deps, outs)} as `dvc stage list`'s pipeline resolves them (foreach items expanded)."""
    from test_dvc_deps import entry_path, expanded_stages

    stages = expanded_stages(yaml.safe_load((repo / "dvc.yaml").read_text()))
    return {name: ({entry_path(d) for d in spec.get("deps", [])},
                   {entry_path(o) for kind in ("outs", "metrics") for o in spec.get(kind, [])})
            for name, spec in stages.items()}


def test_every_headline_model_goes_train_to_evaluate_through_models(baseline):
    io = stage_io(baseline.path)
    for model, train_stage in MODELS.items():
        assert f"models/{model}" in io[train_stage][1], f"{train_stage} does not write models/{model}"
        evaluators = [name for name, (deps, outs) in io.items() if f"models/{model}" in deps
                      and f"metrics/{model}.json" in outs]
        assert evaluators, f"no stage reads models/{model} and writes metrics/{model}.json"
        assert f"metrics/{model}.json" not in io[train_stage][1], f"{train_stage} still scores its model itself"
    declared = yaml.safe_load((baseline.path / "dvc.yaml").read_text())["artifacts"]
    assert {spec["path"] for spec in declared.values()} == {f"models/{m}" for m in {*MODELS, *SCORED_WHERE_FITTED}}
    assert all(spec["type"] == "model" and spec["desc"] and spec["labels"] for spec in declared.values())


def test_models_write_the_headline_schema_and_studies_their_best_run(baseline):
    for path in metrics_files(baseline.path):
        record = load_strict(path)
        if path.stem in {*MODELS, *SCORED_WHERE_FITTED, *LOOKUPS}:
            check_model_metrics(record)
            check_model_evaluation(load_strict(baseline.path / "plots" / path.stem / "evaluation.json"))
        else:
            assert set(record["best"]) == {"run", "test_accuracy"}, f"{path.name}: {record}"


def test_deleting_metrics_reevaluates_without_retraining(baseline, tmp_path):
    repo = clone_workspace(baseline.path, tmp_path / "workspace")
    shutil.rmtree(repo / "metrics")
    changed = set(json.loads(sh("dvc", "status", "--json", cwd=repo)))
    assert not changed & set(MODELS.values()), f"train stages would rerun: {changed & set(MODELS.values())}"
    assert {"imdb_evaluate", "mnist_evaluate", "mri_evaluate@cnn_improved"} <= changed


def predict(repo, *args: str) -> list[dict]:
    result = subprocess.run([stage_python(), "-m", "nnlab.predict", *args, "--json"], cwd=repo, capture_output=True,
                            text=True, env={**venv_env(), "PYTHONPATH": str(repo)}, timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_predict_without_a_model_says_which_stage_makes_it(tmp_path):
    result = subprocess.run([stage_python(), "-m", "nnlab.predict", "imdb", "Good film"], cwd=tmp_path,
                            capture_output=True, text=True, env={**venv_env(), "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: models/imdb_tfidf: missing (run `dvc repro preprocess` to make it)"


def test_predict_on_real_samples(baseline, shared_data, tmp_path):
    """Real reviews, a real MNIST test digit, and a real Kaggle slice against the baseline's models
    (the MRI ones are trained on small synthetic slices, so the real slice's size is refused, as
    the MRI folder loader refuses it)."""
    import tarfile

    import numpy as np
    from PIL import Image

    from nnlab.datasets import idx

    with tarfile.open(shared_data / "imdb" / "aclImdb_sample.tar.gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.startswith("aclImdb/test/pos/") and m.isfile())
        review = tar.extractfile(member).read().decode()
    assert predict(baseline.path, "imdb", review)[0]["label"] in ("negative", "positive")

    digits = idx.read_idx(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz", idx.IMAGES_MAGIC)
    Image.fromarray(digits[0]).save(tmp_path / "digit.png")
    (prediction,) = predict(baseline.path, "mnist", str(tmp_path / "digit.png"))
    assert prediction["label"] in [str(d) for d in range(10)]
    assert max(prediction["scores"], key=prediction["scores"].get) == prediction["label"]

    slice_path = next((shared_data / "alzheimer" / "Alzheimer_s Dataset" / "test" / "NonDemented").glob("*.jpg"))
    result = subprocess.run([stage_python(), "-m", "nnlab.predict", "mri", str(slice_path)], cwd=baseline.path,
                            capture_output=True, text=True, env={**venv_env(), "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {slice_path}: image is 176x208 (W x H), expected 36x40: "
                                            "models/mri_cnn_improved was trained on synthetic 36x40 slices")
    assert np.asarray(Image.open(slice_path)).shape == (208, 176)
