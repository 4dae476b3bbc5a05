"""The batch perceptron (report 002 §1-2) and its `perceptron` and `separation` stages."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import deep_merge, default_params
from nnlab.datasets import synthetic
from nnlab.errors import DataError, ParamError
from nnlab.models import perceptron
from tolerances import assert_within, sum_tolerance
from nnlab.results import check_model_metrics

EYE = [[1.0, 0.0], [0.0, 1.0]]


def classic_params(overrides: dict | None = None) -> dict:
    return deep_merge(default_params(), overrides or {})


def gaussians(mean_pos, variance=1.0, seed=0) -> synthetic.Split:
    cov = (variance * np.eye(2)).tolist()
    return synthetic.gaussians(100, mean_pos, [0.0, 0.0], cov, cov, 0.2, seed)


def train(split, lr=0.01, max_epochs=1000):
    return perceptron.train(split.X_train, split.y_train, split.X_test, split.y_test, lr=lr, max_epochs=max_epochs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_separable_clouds_reach_100_percent_and_stop(seed):
    training = train(gaussians([10.0, 10.0], seed=seed))
    assert training.converged and training.result.trained < 1000
    assert len(training.result.history) == training.result.trained
    final = training.result.final()
    assert final["train_accuracy"] == final["test_accuracy"] == 1.0
    assert final["train_loss"] == 0.0


def margin_tolerance(w: np.ndarray, X: np.ndarray) -> np.ndarray:
    """float64 bound on two evaluations of every ``w . [x, 1]`` (a sum of the features and the bias)."""
    return sum_tolerance(X.shape[1] + 1, np.abs(perceptron.with_bias(X)) @ np.abs(w), np.float64)


@pytest.mark.numerics
def test_first_epoch_is_the_batch_rule_by_hand():
    X = np.array([[1.0, 2.0], [3.0, -1.0], [-2.0, 0.5]])
    y = np.array([1, -1, 1])
    training = perceptron.train(X, y, X, y, lr=0.5, max_epochs=1)
    # From w = 0 every point is on the line, hence misclassified: w = lr * mean(y_i [x_i, 1]).
    expected = 0.5 * np.mean(y[:, None] * np.c_[X, np.ones(3)], axis=0)
    # float64 sums of 3 terms, a division and the product by lr, in other orders
    weights_bound = sum_tolerance(3 + 2, 0.5 * np.mean(np.abs(np.c_[X, np.ones(3)]), axis=0), np.float64)
    assert_within(training.model.weights, expected, weights_bound, "weights")
    margins = y * (np.c_[X, np.ones(3)] @ expected)
    # each margin: the weights' bound through |[x, 1]| and its own sum of 3; then the mean of 3 and a division
    loss_bound = (np.mean(np.abs(np.c_[X, np.ones(3)]) @ weights_bound + margin_tolerance(expected, X))
                  + sum_tolerance(3 + 1, np.mean(np.abs(margins)), np.float64))
    assert_within(training.result.final()["train_loss"], np.mean(np.maximum(0, -margins)), loss_bound, "loss")


@pytest.mark.numerics
def test_lr_only_scales_the_weights():
    split = gaussians([2.0, 2.0])
    epochs = 200
    slow, fast = train(split, lr=0.01, max_epochs=epochs), train(split, lr=3.0, max_epochs=epochs)
    # Equal accuracies on every epoch (train: the same points misclassified), so both runs add the same gradients
    # g_k (bit for bit) times their lr. Each update rounds the product and the sum, u (|w_k| + lr |g_k|),
    # and |g_k| <= mean |[x, 1]| = G, |w_k| <= k lr G: over the epochs at most u lr G (E (E + 1) / 2 + E)
    # per run, and 0.01 and the scaling by 300 round once more.
    for key in ("train_accuracy", "test_accuracy"):
        assert [r[key] for r in fast.result.history] == [r[key] for r in slow.result.history]
    G = np.mean(np.abs(perceptron.with_bias(split.X_train)), axis=0)
    assert_within(fast.model.weights, 300 * slow.model.weights,
                  sum_tolerance(epochs * (epochs + 1) // 2 + epochs + 2, 3.0 * G, np.float64), "weights")


def test_overlapping_clouds_run_to_max_epochs():
    training = train(gaussians([0.0, 0.0]), max_epochs=50)
    assert not training.converged and training.result.trained == len(training.result.history) == 50
    assert 0.2 < training.result.final()["test_accuracy"] < 0.8


def test_saved_perceptron_predicts_the_same_bit_for_bit(tmp_path):
    split = gaussians([2.0, 2.0])
    training = train(split, max_epochs=20)
    perceptron.save_model(tmp_path, training, source="generated")
    loaded, spec = perceptron.load_model(tmp_path, "perceptron")
    assert loaded.weights.tobytes() == training.model.weights.tobytes()
    assert np.array_equal(loaded.predict(split.X_test), training.model.predict(split.X_test))
    assert spec["classes"] == [-1, 1] and spec["run"] == training.result.run_record()


def test_a_model_folder_of_another_kind_is_refused(tmp_path):
    training = train(gaussians([10.0, 10.0]), max_epochs=5)
    perceptron.save_model(tmp_path, training, source="generated")
    (tmp_path / "spec.json").write_text(json.dumps({"kind": "numpy_mlp"}))
    with pytest.raises(DataError, match="a 'numpy_mlp' model, not 'perceptron'"):
        perceptron.load_model(tmp_path, "perceptron")


def test_labels_must_be_plus_minus_one():
    with pytest.raises(DataError, match="data.npz.*must be \\+1/-1"):
        perceptron.check_labels(np.array([0, 1, 1]), "data.npz")


def write_gaussians(root: Path, split: synthetic.Split) -> None:
    (root / "data/generated").mkdir(parents=True)
    np.savez(root / "data/generated/gaussians.npz", **split.arrays())


def load_strict(path: Path):
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path} holds {c}"))


def test_perceptron_stages_train_then_evaluate(tmp_path, monkeypatch):
    from stages import evaluate_2d
    from stages import perceptron as stage

    write_gaussians(tmp_path, gaussians([10.0, 10.0]))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(classic_params()))
    monkeypatch.chdir(tmp_path)
    stage.main(["--params", "params.yaml"])
    assert {p.name for p in (tmp_path / "models/perceptron").iterdir()} == {"spec.json", "weights.npz"}
    assert json.loads((tmp_path / "models/perceptron/spec.json").read_text())["converged"] is True
    evaluate_2d.main(["--model", "perceptron"])
    check_model_metrics(load_strict(tmp_path / "metrics/perceptron.json"))
    metrics = load_strict(tmp_path / "plots/perceptron/evaluation.json")
    assert metrics["test"]["accuracy"] == metrics["train"]["accuracy"] == 1.0 and metrics["unit"] == "epoch"
    assert metrics["test"]["recall"] == {"-1": 1.0, "1": 1.0} and not metrics["diverged"]
    history = (tmp_path / "plots/perceptron/history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == metrics["trained"] + 1
    confusion = load_strict(tmp_path / "plots/perceptron/confusion.json")
    assert len(confusion) == 40 and {row["actual"] for row in confusion} == {"-1", "1"}
    assert {p.name for p in (tmp_path / "plots/perceptron").glob("*.png")} == {
        "loss.png", "accuracy.png", "decision.png"}


def test_separation_stage_table(tmp_path, monkeypatch):
    from stages import separation as stage

    cases = {"far": {"mean_pos": [10.0, 10.0], "variance": 1.0},
             "same": {"mean_pos": [0.0, 0.0], "variance": 1.0},
             "wide": {"mean_pos": [10.0, 10.0], "variance": 100.0}}
    params = classic_params()
    params["separation"].update(max_epochs=100, cases=cases)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    stage.main(["--params", "params.yaml"])
    table = (tmp_path / "plots/separation/table.csv").read_text().splitlines()
    assert table[0] == ("case,mean_distance,variance,train_accuracy,test_accuracy,train_loss,test_loss,"
                        "epochs,converged")
    rows = {line.split(",")[0]: line.split(",") for line in table[1:]}
    assert set(rows) == set(cases)
    # |(10, 10)| = sqrt(100 + 100): exact squares and sum, one correctly rounded sqrt; the table prints 6 digits
    assert rows["far"][1] == f"{np.sqrt(200):.6g}" and rows["far"][4] == "1"
    assert rows["same"][8] == "False" and float(rows["same"][4]) < 0.8
    metrics = load_strict(tmp_path / "metrics/separation.json")
    assert metrics["best"] == {"run": "far", "test_accuracy": 1.0}
    assert metrics["converged_runs"] == sum(row[8] == "True" for row in rows.values())
    assert (tmp_path / "plots/separation/accuracy.png").stat().st_size > 0


@pytest.mark.parametrize("section, override, message", [
    ("perceptron", {"max_epochs": 0}, "perceptron.max_epochs = 0: must be >= 1"),
    ("perceptron", {"lr": -1}, "perceptron.lr = -1.0: must be > 0"),
    ("separation", {"cases": {"bad": {"mean_pos": [1.0], "variance": 1.0}}},
     "separation.cases.bad.mean_pos = [1.0]: must have 2 coordinates"),
    ("separation", {"cases": {"bad": {"mean_pos": [1.0, 1.0], "variance": 0}}},
     "separation.cases.bad.variance = 0"),
])
def test_bad_params_are_one_line_errors(tmp_path, monkeypatch, section, override, message):
    stage = __import__(f"stages.{section}", fromlist=["main"])
    write_gaussians(tmp_path, gaussians([10.0, 10.0]))
    params = classic_params({section: override})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamError) as err:
        stage.main(["--params", "params.yaml"])
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "metrics").exists()


def test_labels_other_than_plus_minus_one_are_refused(tmp_path, monkeypatch):
    from stages import perceptron as stage

    split = gaussians([10.0, 10.0])
    write_gaussians(tmp_path, synthetic.Split(split.X_train, (split.y_train > 0).astype(int), split.X_test,
                                              (split.y_test > 0).astype(int)))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(classic_params()))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="gaussians.npz: perceptron labels must be \\+1/-1"):
        stage.main(["--params", "params.yaml"])
    assert not (tmp_path / "metrics").exists()
