"""Models as tracked artifacts, in clones of the shared tiny-params baseline (tests/pipeline_repo.py):
train -> models/ -> evaluate edges in the DAG, one metrics schema, evaluation without retraining,
and `python -m nnlab.predict` on whatever model the workspace holds."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytest.register_assert_rewrite("pipeline_repo")
from conftest import ROOT, stage_python, venv_env  # noqa: E402
from pipeline_repo import (clone_workspace, expanded_stages, load_strict, metrics_files, sh,  # noqa: E402
                           stage_outputs)

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


#: The one data stage that records no source: it draws its datasets itself.
DRAWN = {"generate": "generated"}


def data_stages_upstream(repo, output: str) -> set[str]:
    """The stages with no stage upstream (those that bring data in) that ``output``'s stage depends on."""
    stages = expanded_stages(repo)
    makers = {out: name for name, stage in stages.items() for out in stage_outputs(stage)}

    def maker(path: str) -> str | None:
        return next((name for out, name in makers.items() if path == out or path.startswith(out.rstrip("/") + "/")),
                    None)

    def upstream(name: str) -> set[str]:
        before = {maker(dep) for dep in stages[name].get("deps", [])} - {None}
        return set().union(*map(upstream, before)) if before else {name}

    return upstream(maker(output))


def test_every_model_reports_the_source_of_the_data_it_was_trained_on(baseline):
    """The ``source`` in each model's metrics and evaluation is its data stage's, as dvc.yaml connects them."""
    repo = baseline.path
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["artifacts"].values()
    models = [Path(spec["path"]).name for spec in declared if spec["type"] == "model"]
    assert len(models) == len({*MODELS, *SCORED_WHERE_FITTED})
    for model in models:
        (data_stage,) = data_stages_upstream(repo, f"metrics/{model}.json")
        stats = repo / "plots" / data_stage / "data_stats.json"
        source = load_strict(stats)["source"] if data_stage not in DRAWN else DRAWN[data_stage]
        for scored in (f"metrics/{model}.json", f"plots/{model}/evaluation.json"):
            assert load_strict(repo / scored)["source"] == source, f"{scored}: not {data_stage}'s source {source!r}"


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


def agrees_with_the_evaluate_stage(repo, model: str, predictions: list[dict], actual: list[str]) -> None:
    """Input by input, the labels the evaluate stage gave the test split (its confusion.json, in the
    split's order), hence its test accuracy; each label the class with the highest probability (or
    score, for the linear MNIST classifiers)."""
    values = [p.get("probabilities") or p["scores"] for p in predictions]
    assert [p["label"] for p in predictions] == [max(v, key=v.get) for v in values]
    confusion = load_strict(repo / "plots" / model / "confusion.json")
    assert [row["actual"] for row in confusion] == actual
    assert [p["label"] for p in predictions] == [row["predicted"] for row in confusion], model
    right = sum(p["label"] == label for p, label in zip(predictions, actual))
    assert right / len(actual) == pytest.approx(load_strict(repo / "plots" / model / "evaluation.json")["test"]["accuracy"],
                                                rel=1e-5)


def test_predict_answers_as_the_model_and_its_evaluate_stage_on_the_test_split(baseline, tmp_path):
    """`nnlab.predict` on the test split's own inputs (MNIST digits saved as images, IMDB reviews as
    text) gives the class the model scores highest, computed here from the stored test features,
    and the evaluate stage's label for each input."""
    import numpy as np
    import torch
    from PIL import Image

    from nnlab.datasets import imdb, mnist
    from nnlab.models import linear, sentiment

    repo = baseline.path
    with np.load(repo / "data/mnist/raw.npz") as raw:
        images, digits = raw["images_test"], raw["labels_test"]
    paths = [str(tmp_path / f"{index}.png") for index in range(len(images))]
    for image, path in zip(images, paths):
        Image.fromarray(image).save(path)
    X_test = mnist.load_normalized(repo / "data/mnist/normalized.npz").X_test
    for model, load in (("mnist_linear", linear.load_numpy_model), ("mnist_torch", linear.load_torch_model)):
        predictions = predict(repo, "mnist", *paths, "--model", model)
        classifier, spec = load(repo / "models" / model, model)
        assert [p["label"] for p in predictions] == [spec["classes"][i] for i in classifier.scores(X_test).argmax(axis=1)]
        agrees_with_the_evaluate_stage(repo, model, predictions, [str(d) for d in digits])

    reviews = imdb.read_reviews_table(repo / imdb.REVIEWS_TABLE)
    test = reviews[reviews["split"] == "test"]
    features = imdb.load_features(repo / "data/imdb/tfidf")[2]
    for model in ("imdb_train", "imdb_tuned"):
        predictions = predict(repo, "imdb", *test["review"], "--model", model)
        net, _ = sentiment.load_model(repo / "models" / model)
        positive = sentiment.predict_proba(net, features, torch.device("cpu")) >= 0.5
        assert [p["label"] for p in predictions] == [imdb.SENTIMENTS[int(p)] for p in positive]
        agrees_with_the_evaluate_stage(repo, model, predictions, test["sentiment"].tolist())


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
