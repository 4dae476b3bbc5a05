"""`python -m nnlab.predict` on the baseline's models: the README's examples answer with the model and
the data it learnt from (synthetic flagged on every line), every model that can predict does, the
MNIST linear outputs are called scores, a diverged model and a mistyped name are one line that says
what to do, and a slice of another size names the data the model expects and what trains it on real data."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

pytest.register_assert_rewrite("pipeline_repo")
from conftest import ROOT, default_params, stage_python, venv_env  # noqa: E402

pytest_plugins = ["pipeline_repo"]

REVIEWS = ("What a waste of two hours.", "Loved every minute")


def predict(repo, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([stage_python(), "-m", "nnlab.predict", *args], cwd=repo, capture_output=True, text=True,
                          env={**venv_env(), "PYTHONPATH": str(ROOT)}, timeout=120)


def trained_on(repo, model: str, noun: str) -> str:
    """What a line says of the data ``model`` learnt from, as its spec.json records it."""
    source = json.loads((repo / "models" / model / "spec.json").read_text())["source"]
    return f"SYNTHETIC {noun}, not a real-data answer" if source == "synthetic" else f"real {noun} ({source})"


@pytest.mark.parametrize("model", ["imdb_train", "imdb_tuned", "imdb_logreg"])
def test_readme_reviews_name_the_model_and_its_data_on_every_line(baseline, model):
    result = predict(baseline.path, "imdb", "--model", model, *REVIEWS)
    assert result.returncode == 0, result.stderr
    data = re.escape(trained_on(baseline.path, model, "IMDB reviews"))
    for line, review in zip(result.stdout.splitlines(), REVIEWS, strict=True):
        assert re.fullmatch(rf"(negative|positive)\tprobabilities: negative 0\.\d{{4}}, positive [01]\.\d{{4}}\t"
                            rf"{re.escape(review)}\t\[{model}, trained on {data}\]", line), line


def test_json_carries_the_model_and_its_data(baseline):
    result = predict(baseline.path, "imdb", "--json", REVIEWS[0])
    (answer,) = map(json.loads, result.stdout.splitlines())
    from nnlab.predict import DEFAULTS

    source = json.loads((baseline.path / "models" / DEFAULTS["imdb"] / "spec.json").read_text())["source"]
    assert answer["model"] == DEFAULTS["imdb"] and answer["trained_on"] == source
    assert answer["synthetic"] is (source == "synthetic")
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0)


def test_mnist_linear_outputs_are_scores_not_probabilities(baseline, tmp_path):
    from PIL import Image

    digit = tmp_path / "a digit drawn by hand.png"
    Image.new("L", (28, 28), 0).save(digit)
    for model in ("mnist_torch", "mnist_linear"):
        result = predict(baseline.path, "mnist", "--model", model, "--json", str(digit))
        (answer,) = map(json.loads, result.stdout.splitlines())
        assert "probabilities" not in answer and set(answer["scores"]) == {str(d) for d in range(10)}
        plain = predict(baseline.path, "mnist", "--model", model, str(digit)).stdout
        assert "\tscores: 0 " in plain and plain.split("\t")[2] == str(digit)   # the file name is never cut


@pytest.fixture
def models(baseline, tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(baseline.path / "models", copy)
    return copy


def test_a_diverged_model_is_refused_naming_the_stage_that_retrains_it(models):
    spec_path = models / "mri_simple_nn2" / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec["run"].update(diverged=True, diverged_at=3)
    spec_path.write_text(json.dumps(spec))
    result = predict(ROOT, "mri", "--models", str(models), "--model", "mri_simple_nn2", "slice.png")
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {models}/mri_simple_nn2: this model diverged in training (epoch 3)")
    assert "`dvc repro mri_model@simple_nn2`" in line


def test_a_mistyped_model_lists_the_models_present(models):
    result = predict(ROOT, "mri", "--models", str(models), "--model", "cnn_improved", "slice.png")
    assert result.returncode == 2
    assert result.stderr == (f"error: --model cnn_improved: models are named as their folders under {models}/ "
                             f"(mri_<name>); the mri models in {models}/: mri_cnn1, mri_cnn_improved, "
                             "mri_simple_nn1, mri_simple_nn2\n")


def test_a_slice_of_another_size_says_what_the_model_expects(models, tmp_path):
    from PIL import Image

    scaling = json.loads((models / "mri_scaler" / "spec.json").read_text())
    kaggle = tmp_path / "27 (37).jpg"
    Image.new("L", (176, 208), 0).save(kaggle)
    result = predict(ROOT, "mri", "--models", str(models), str(kaggle))
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {kaggle}: image is 176x208 (W x H), expected {scaling['width']}x{scaling['height']}: "
        f"{models}/mri_cnn_improved was trained on synthetic {scaling['width']}x{scaling['height']} slices; "
        "to classify Kaggle slices, train on the Kaggle folder first: dvc exp run -S data.mri.source=folder "
        "-S 'data.mri.folder.path=/path/to/Alzheimer_s Dataset'\n")


def test_help_names_the_models_as_their_folders():
    result = predict(ROOT, "--help")
    assert result.returncode == 0
    assert "--model mri_simple_nn2" in result.stdout and "imdb_logreg" in result.stdout
    assert "cnn_improved]" not in result.stdout.replace("mri_cnn_improved", "")


def readme_predict_output() -> list[str]:
    """The lines of the ```text block of README.md's Predict section: what its commands answer."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Predict\n", 1)[1].split("\n## ", 1)[0]
    shown = re.search(r"```text\n(.*?)```", section, re.DOTALL)
    assert shown, "README.md's Predict section shows no answer (a ```text block after its commands)"
    return shown.group(1).splitlines()


def test_readme_shows_what_predict_answers_with_the_default_models():
    """Each answer README.md shows is a line `predict` writes, naming the data params.yaml's defaults
    train on (so a switch of a default to real data must update it), ranked as its values say."""
    from nnlab.predict import MRI_REAL_DATA, line

    data = default_params()["data"]
    lines = readme_predict_output()
    assert lines
    for shown in lines:
        if shown.startswith("error: "):
            assert data["mri"]["source"] == "synthetic" and shown.endswith(MRI_REAL_DATA), shown
            continue
        label, values, text, about = shown.split("\t")
        model = re.fullmatch(r"\[(\w+), trained on .*\]", about).group(1)
        dataset = model.split("_")[0]
        key, pairs = values.split(": ", 1)
        assert key == ("scores" if dataset == "mnist" else "probabilities"), shown
        scores = {name: float(value) for name, value in (pair.rsplit(" ", 1) for pair in pairs.split(", "))}
        assert max(scores, key=scores.get) == label, shown
        source = data[dataset]["source"]
        prediction = {"input": text, "label": label, key: scores, "model": model, "trained_on": source,
                      "synthetic": source == "synthetic"}
        assert line(dataset, prediction) == shown
