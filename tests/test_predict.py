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


# -- in process (`make mutate` runs these against predict's mutants; the tests above run it in subprocesses) --
def test_the_stage_of_a_model_is_its_folder_name_or_its_mri_model_entry():
    from nnlab.predict import stage_of

    assert stage_of("mri_cnn_improved") == "mri_model@cnn_improved"
    assert stage_of("imdb_mri_like") == "imdb_mri_like" and stage_of("mnist_torch") == "mnist_torch"


def test_answers_label_each_input_with_the_class_of_its_largest_value_and_its_provenance():
    import numpy as np

    from nnlab.predict import answers, provenance

    about = provenance("mnist_linear", {"source": "idx"})
    assert about == {"model": "mnist_linear", "trained_on": "idx", "synthetic": False}
    assert provenance("mri_cnn1", {"source": "synthetic"})["synthetic"] is True
    values = np.array([[0.25, -1.0, 0.75], [2.0, 0.5, 1.0]])
    assert answers(["a.png", "b.png"], values, ["x", "y", "z"], "scores", about) == [
        {"input": "a.png", "label": "z", "scores": {"x": 0.25, "y": -1.0, "z": 0.75}, **about},
        {"input": "b.png", "label": "x", "scores": {"x": 2.0, "y": 0.5, "z": 1.0}, **about}]


def prediction(text: str, *, synthetic: bool, key: str = "probabilities") -> dict:
    return {"input": text, "label": "positive", key: {"negative": 0.125, "positive": 0.875}, "model": "imdb_logreg",
            "trained_on": "synthetic" if synthetic else "aclimdb", "synthetic": synthetic}


def test_a_line_cuts_a_long_review_never_a_file_name_and_flags_synthetic_data():
    from nnlab.predict import line

    assert line("imdb", prediction("x" * 60, synthetic=True)) == (
        f"positive\tprobabilities: negative 0.1250, positive 0.8750\t{'x' * 60}\t"
        "[imdb_logreg, trained on SYNTHETIC IMDB reviews, not a real-data answer]")
    assert line("imdb", prediction("y" * 61, synthetic=False)).split("\t")[2:] == [
        "y" * 57 + "...", "[imdb_logreg, trained on real IMDB reviews (aclimdb)]"]
    name = "d" * 70 + ".png"
    assert line("mnist", prediction(name, synthetic=False, key="scores")).split("\t")[1:3] == [
        "scores: negative 0.1250, positive 0.8750", name]


def write_model(models, name: str, kind: str, **spec) -> None:
    (models / name).mkdir(parents=True)
    (models / name / "spec.json").write_text(json.dumps({"kind": kind, "source": "synthetic", **spec}))


def test_models_present_are_the_folders_of_the_datasets_kinds(tmp_path):
    from nnlab.models import linear, mri_nets
    from nnlab.predict import models_present

    write_model(tmp_path, "mri_b", mri_nets.KIND)
    write_model(tmp_path, "mri_a", mri_nets.KIND)
    write_model(tmp_path, "mnist_torch", linear.KINDS["torch"])
    (tmp_path / "mri_0_broken").mkdir()   # first in the listing: the folders after it are still found
    (tmp_path / "mri_0_broken" / "spec.json").write_text("{")
    assert models_present(tmp_path, "mri") == ["mri_a", "mri_b"]
    assert models_present(tmp_path, "mnist") == ["mnist_torch"]
    assert models_present(tmp_path, "imdb") == []


def test_the_imdb_network_loads_from_its_folder_alone(monkeypatch):
    from nnlab.models import sentiment
    from nnlab.predict import kinds

    monkeypatch.setattr(sentiment, "load_model", lambda directory: ("net", directory))
    assert kinds("imdb")[sentiment.KIND]("models/imdb_train", "imdb_train") == ("net", "models/imdb_train")


def test_load_refuses_a_foreign_missing_or_diverged_model_saying_what_to_run(tmp_path, monkeypatch):
    from nnlab import predict
    from nnlab.errors import DataError
    from nnlab.models import mri_nets

    with pytest.raises(DataError) as error:
        predict.load("mri", tmp_path, None)
    assert str(error.value) == (f"{tmp_path}/mri_cnn_improved: missing (run `dvc repro mri_model@cnn_improved` to "
                                f"make it); the mri models in {tmp_path}/: none (run `dvc repro` to train them)")
    write_model(tmp_path, "mri_cnn1", mri_nets.KIND, run={"diverged": True, "diverged_at": 7, "unit": "epoch"})
    write_model(tmp_path, "mri_cnn2", mri_nets.KIND)
    with pytest.raises(DataError) as error:
        predict.load("mri", tmp_path, "cnn1")
    assert str(error.value) == (f"--model cnn1: models are named as their folders under {tmp_path}/ (mri_<name>); "
                                f"the mri models in {tmp_path}/: mri_cnn1, mri_cnn2")
    with pytest.raises(DataError) as error:
        predict.load("mri", tmp_path, "mri_cnn1")
    assert str(error.value) == (f"{tmp_path}/mri_cnn1: this model diverged in training (epoch 7), so it predicts "
                                "nothing; stage mri_model@cnn1 retrains it (lower its learning rate in params.yaml, "
                                "then `dvc repro mri_model@cnn1`)")
    write_model(tmp_path, "mri_simple_nn1", mri_nets.KIND, run={"diverged": False})
    loaded = []
    monkeypatch.setattr(predict, "kinds", lambda dataset: {
        mri_nets.KIND: lambda directory, stage: loaded.append((directory, stage)) or ("net", {"spec": dataset})})
    assert predict.load("mri", tmp_path, "mri_simple_nn1") == ("net", {"spec": "mri"}, "mri_simple_nn1")
    assert loaded == [(tmp_path / "mri_simple_nn1", "mri_model@simple_nn1")]


def test_a_digit_is_a_grey_image_of_the_models_side(tmp_path):
    import numpy as np
    from PIL import Image

    from nnlab.errors import DataError
    from nnlab.predict import read_digit

    pixels = np.arange(16, dtype=np.uint8).reshape(4, 4) * 17
    for mode in ("L", "P", "LA"):   # grey, palette, grey with alpha
        Image.fromarray(pixels).convert(mode).save(tmp_path / f"{mode}.png")
        assert (read_digit(tmp_path / f"{mode}.png", 4) == pixels).all()
    Image.fromarray(pixels).convert("1").save(tmp_path / "1.png")   # black and white
    assert set(np.unique(read_digit(tmp_path / "1.png", 4))) == {0, 255}
    Image.fromarray(pixels).convert("RGB").save(tmp_path / "colour.png")
    with pytest.raises(DataError, match=r"colour\.png: a RGB image; a digit is greyscale \(mode L\), white on black$"):
        read_digit(tmp_path / "colour.png", 4)
    Image.fromarray(pixels[:3]).save(tmp_path / "wide.png")
    with pytest.raises(DataError, match=r"wide\.png: image is 4x3, expected 5x5: the models are trained on MNIST's "
                                        r"5x5 grey digits, white on black, centred$"):
        read_digit(tmp_path / "wide.png", 5)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match=r"text\.png: unreadable image"):
        read_digit(tmp_path / "text.png", 4)
