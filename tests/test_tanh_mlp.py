"""The hand-written tanh MLP (report 004) against autograd and finite differences, and its stages."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT, run_stage, stage_python, venv_env
from nnlab.datasets import synthetic
from nnlab.errors import ParamError
from nnlab.io import dumps_json
from nnlab.models import tanh_mlp
from nnlab.results import SCORE_COLUMNS, check_model_metrics
from test_perceptron import classic_params, load_strict
from tolerances import assert_within, near_ties, softmax_mlp_tolerances, sum_tolerance

NAMES = ("Wh", "bh", "Wy", "by")
BACKWARD = tanh_mlp.backward   # what recorded_steps wraps


def problem(runs: int | None = None, n=7, nx=2, nh=5, ny=3, seed=0):
    """float64 parameters (with a leading run dimension when ``runs``), inputs and one-hot targets."""
    g = torch.Generator().manual_seed(seed)
    params = tanh_mlp.init_params(nx, nh, ny, std=0.8, generator=g, dtype=torch.float64)
    if runs is not None:
        params = {k: v + 0.5 * torch.randn((runs, *v.shape), generator=g, dtype=torch.float64)
                  for k, v in params.items()}
    X = torch.randn(n, nx, generator=g, dtype=torch.float64)
    labels = torch.randint(0, ny, (n,), generator=g)
    return params, X, torch.nn.functional.one_hot(labels, ny).to(torch.float64), labels


def layer_tolerances(params, X, Y, dtype=np.float64) -> dict:
    """:func:`softmax_mlp_tolerances` of the tanh MLP (``Wh`` is ``(nh, nx)``, used as ``X @ Wh.T``)."""
    layers = [(params["Wh"].T.numpy(), params["bh"].numpy()), (params["Wy"].T.numpy(), params["by"].numpy())]
    return softmax_mlp_tolerances(X.numpy(), Y.numpy(), layers, "tanh", dtype)


@pytest.mark.numerics
def test_forward_loss_and_backward_match_autograd():
    params, X, Y, labels = problem()
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    logits = torch.tanh(X @ leaves["Wh"].T + leaves["bh"]) @ leaves["Wy"].T + leaves["by"]
    reference = torch.nn.functional.cross_entropy(logits, labels)
    reference.backward()

    yhat, outputs = tanh_mlp.forward(params, X)
    loss, accuracy = tanh_mlp.loss_accuracy(yhat, Y)
    grads = tanh_mlp.backward(params, outputs, Y)
    # float64 both sides, summed in other orders: the float64 bounds of the network's sums
    bounds = layer_tolerances(params, X, Y)
    assert_within(yhat, torch.softmax(logits, dim=1).detach(), bounds["probs"], "probabilities")
    assert_within(loss, reference.detach(), bounds["mean_loss"], "loss")
    assert near_ties(logits.detach().numpy(), bounds["logits"]) == 0   # so the accuracies must agree exactly
    assert accuracy.item() == (logits.argmax(1) == labels).double().mean().item()
    for name, bound in zip(("Wh", "bh", "Wy", "by"), (bound for pair in bounds["grads"] for bound in pair)):
        assert_within(grads[name], leaves[name].grad, bound.T.reshape(grads[name].shape), name)


def test_backward_matches_central_differences():
    params, X, Y, _ = problem()
    grads = tanh_mlp.backward(params, tanh_mlp.forward(params, X)[1], Y)
    h = 1e-6
    for name in NAMES:
        numeric = torch.zeros_like(params[name])
        for index in np.ndindex(*params[name].shape):
            shifted = {k: v.clone() for k, v in params.items()}
            shifted[name][index] += h
            plus = tanh_mlp.loss_accuracy(tanh_mlp.forward(shifted, X)[0], Y)[0]
            shifted[name][index] -= 2 * h
            minus = tanh_mlp.loss_accuracy(tanh_mlp.forward(shifted, X)[0], Y)[0]
            numeric[index] = (plus - minus) / (2 * h)
        error = (numeric - grads[name]).norm() / max((numeric + grads[name]).norm().item(), 1e-12)
        assert error < 1e-6, f"{name}: relative error {error:.2e}"


def test_run_dimension_is_independent_runs():
    params, X, Y, _ = problem(runs=3)
    yhat, outputs = tanh_mlp.forward(params, X)
    losses, accuracies = tanh_mlp.loss_accuracy(yhat, Y)
    grads = tanh_mlp.backward(params, outputs, Y)
    for r in range(3):
        single = {k: v[r] for k, v in params.items()}
        yhat_r, outputs_r = tanh_mlp.forward(single, X)
        torch.testing.assert_close(yhat[r], yhat_r)
        torch.testing.assert_close(losses[r], tanh_mlp.loss_accuracy(yhat_r, Y)[0])
        for name, grad in tanh_mlp.backward(single, outputs_r, Y).items():
            torch.testing.assert_close(grads[name][r], grad)


def test_sgd_steps_against_the_gradient_per_run():
    params, X, Y, _ = problem(runs=2)
    grads = tanh_mlp.backward(params, tanh_mlp.forward(params, X)[1], Y)
    etas = torch.tensor([0.1, 2.0], dtype=torch.float64).view(-1, 1, 1)
    before = {k: v.clone() for k, v in params.items()}
    tanh_mlp.sgd(params, grads, etas)
    for name in NAMES:
        torch.testing.assert_close(params[name], before[name] - etas * grads[name])


def test_init_std_is_0_3():
    params = tanh_mlp.init_params(400, 300, 200, generator=torch.Generator().manual_seed(0))
    assert params["Wh"].shape == (300, 400) and params["by"].shape == (1, 200)
    assert params["Wh"].std().item() == pytest.approx(0.3, rel=0.02)
    assert params["Wy"].mean().abs().item() < 0.01


def circles(n_samples=200, seed=0) -> synthetic.Split:
    return synthetic.circles(n_samples, 0.1, 0.5, 0.5, seed, grid_extent=2.0, grid_step=0.5)


def test_defaults_learn_the_circles():
    data = tanh_mlp.CirclesData.from_split(circles(400), standardize=True)
    run, = tanh_mlp.train_runs(data, hidden_units=10, batch_size=10, lrs=[0.03], epochs=150, seed=42)
    assert not run.diverged and len(run.history) == 150
    assert run.final()["test_accuracy"] >= 0.9
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]


def recorded_steps(monkeypatch, run: int = 0) -> list:
    """Record every SGD step of one run of ``train_runs`` as ``(params, X, Y)`` (copies)."""
    steps, original = [], tanh_mlp.backward

    def backward(params, outputs, Y):
        steps.append(({k: v[run].clone() for k, v in params.items()}, outputs["X"].clone(), Y.clone()))
        return original(params, outputs, Y)
    monkeypatch.setattr(tanh_mlp, "backward", backward)
    return steps


def trajectory_bound(steps, lr: float, dtype=np.float64) -> list[float]:
    """Bound on the Euclidean distance of all parameters between two SGD runs after each step.

    Each step adds ``lr`` times the bound on two evaluations of the batch gradient
    (:func:`softmax_mlp_tolerances`) and the rounding of each update (``|p| + lr |g|``);
    an earlier difference passes through the step's Jacobian ``I - lr H`` (H the batch
    loss's Hessian there), whose 2-norm bounds its growth. First order: the differences
    (~1e-14) are far below the scale on which H changes.
    """
    bound, bounds = 0.0, []
    for params, X, Y in steps:
        tolerances = layer_tolerances(params, X, Y, dtype)
        grads = BACKWARD(params, tanh_mlp.forward(params, X)[1], Y)
        flat = torch.cat([params[name].reshape(-1) for name in NAMES])
        shapes = [params[name].shape for name in NAMES]

        def gradient(vector):   # the analytic batch gradient as one vector: its Jacobian is H
            parts = dict(zip(NAMES, (piece.reshape(shape) for piece, shape in
                                     zip(vector.split([math.prod(s) for s in shapes]), shapes))))
            g = BACKWARD(parts, tanh_mlp.forward(parts, X)[1], Y)
            return torch.cat([g[name].reshape(-1) for name in NAMES])
        hessian = torch.autograd.functional.jacobian(gradient, flat)
        growth = torch.linalg.matrix_norm(torch.eye(len(flat), dtype=flat.dtype) - lr * hessian, ord=2).item()
        step_bound = np.concatenate([
            (lr * bound_.T.reshape(params[name].shape)
             + sum_tolerance(2, np.abs(params[name].numpy()) + lr * np.abs(grads[name].numpy()), dtype)).reshape(-1)
            for name, bound_ in zip(NAMES, (b for pair in tolerances["grads"] for b in pair))])
        bound = bound * growth + float(np.linalg.norm(step_bound))
        bounds.append(bound)
    return bounds


def scored_bounds(params, data, distance: float) -> dict:
    """Bounds on the float64 epoch scores of two runs whose parameters are ``distance`` apart (Euclidean).

    Each parameter moves by at most ``distance``: a logit by that times
    ``sum |Wy| (sum |x| + 1) + sum |h| + 1`` (|tanh'| <= 1), on top of its own sums'
    bound; the loss then moves by at most twice the largest logit bound (the
    gradient of cross-entropy in the logits sums to at most 2 in absolute value).
    """
    result = {}
    for split, X, Y in (("train", data.X_train, data.Y_train), ("test", data.X_test, data.Y_test)):
        X64, Y64 = X.double(), Y.double()
        tolerances = layer_tolerances(params, X64, Y64)
        h = torch.tanh(X64 @ params["Wh"].T + params["bh"]).numpy()
        reach = (np.abs(params["Wy"].numpy()).sum(axis=1)[None, :] * (np.abs(X64.numpy()).sum(axis=1, keepdims=True) + 1)
                 + np.abs(h).sum(axis=1, keepdims=True) + 1)
        logits_bound = tolerances["logits"] + distance * reach
        logits = (h @ params["Wy"].T.numpy() + params["by"].numpy())
        result[f"{split}_loss"] = tolerances["mean_loss"] + 2 * float(logits_bound.max(axis=1).mean())
        result[f"{split}_accuracy"] = near_ties(logits, logits_bound) / len(X)
    return result


@pytest.mark.numerics
def test_joint_runs_equal_separate_runs_and_divergence_ends_cleanly(monkeypatch):
    # float64: the point is that a run dimension changes nothing but the order of sums
    # 4 steps an epoch (the last one smaller), so that the bound's growth is followed step by step quickly
    data = tanh_mlp.CirclesData.from_split(circles(), standardize=False, dtype=torch.float64)
    settings = dict(hidden_units=6, batch_size=47, epochs=4, seed=3)
    normal, blown = tanh_mlp.train_runs(data, lrs=[0.1, 1e6], **settings)
    steps = recorded_steps(monkeypatch)
    alone, = tanh_mlp.train_runs(data, lrs=[0.1], **settings)
    bounds = trajectory_bound(steps, 0.1)
    per_epoch = len(steps) // settings["epochs"]
    distance = math.sqrt(sum(float(torch.sum((normal.params[k] - alone.params[k]) ** 2)) for k in NAMES))
    assert distance <= bounds[-1]
    for epoch, (row, expected) in enumerate(zip(normal.history, alone.history, strict=True), start=1):
        assert row["epoch"] == expected["epoch"] == epoch
        scored = scored_bounds(steps[epoch * per_epoch][0] if epoch * per_epoch < len(steps) else alone.params,
                               data, bounds[epoch * per_epoch - 1])
        for key in SCORE_COLUMNS:
            assert_within(row[key], expected[key], scored[key], key)
    assert blown.diverged and blown.diverged_at == blown.trained + 1 == len(blown.history) + 1
    row = json.loads(dumps_json(blown.table_row()), parse_constant=pytest.fail)
    assert row["diverged"] is True and row["test_accuracy"] is None and row["test_loss"] is None


def test_standardize_scales_the_grid_like_the_training_points():
    split = circles()
    data = tanh_mlp.CirclesData.from_split(split, standardize=True)
    assert data.X_train.mean(0).abs().max() < 1e-6 and (data.X_train.std(0) - 1).abs().max() < 0.01
    torch.testing.assert_close(data.scaling(split.X_test), data.X_test)


def write_circles(root: Path, n_samples=100) -> None:
    (root / "data/generated").mkdir(parents=True)
    np.savez(root / "data/generated/circles.npz", **circles(n_samples).arrays())


def test_grid_stage_marks_divergence_and_writes_valid_json(tmp_path):
    write_circles(tmp_path)
    params = classic_params({"tanh_grid": {"batch_sizes": [1, 10], "lrs": [0.05, 1e6], "epochs": 3}})
    result = run_stage("tanh_grid", params, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "plots/tanh_grid/table.csv", index_col="run")
    assert list(table.columns[:2]) == ["batch_size", "lr"] and len(table) == 4
    assert table.loc["batch_1_lr_1e+06", "diverged"] and pd.isna(table.loc["batch_1_lr_1e+06", "test_accuracy"])
    metrics = load_strict(tmp_path / "metrics/tanh_grid.json")
    assert metrics["diverged_runs"] == 2 and metrics["best"]["run"] in ("batch_1_lr_0.05", "batch_10_lr_0.05")
    assert "seconds" not in json.dumps(metrics)
    assert {p.name for p in (tmp_path / "plots/tanh_grid").glob("*.png")} == {"heatmap.png", "curves.png"}


@pytest.mark.parametrize("standardize", [True, False])
def test_saved_net_predicts_the_same_bit_for_bit(tmp_path, standardize):
    split = circles()
    data = tanh_mlp.CirclesData.from_split(split, standardize=standardize)
    run, = tanh_mlp.train_runs(data, hidden_units=6, batch_size=10, lrs=[0.1], epochs=3, seed=0)
    net = tanh_mlp.TanhNet(run.params, data.scaling)
    tanh_mlp.save_model(tmp_path, net, run, classes=[0, 1], source="generated")
    loaded, spec = tanh_mlp.load_model(tmp_path, "tanh_mlp")
    assert spec["standardize"] is standardize and spec["run"] == run.run_record()
    assert loaded.class1_probability(split.X_test).tobytes() == net.class1_probability(split.X_test).tobytes()
    assert np.array_equal(loaded.predict(split.X_test), net.predict(split.X_test))
    # the loader scores as training did: the last history row, to the bit
    assert loaded.loss(split.X_test, split.y_test) == run.history[-1]["test_loss"]
    assert np.mean(loaded.predict(split.X_train) == split.y_train) == run.history[-1]["train_accuracy"]


def test_mlp_stages_train_then_evaluate(tmp_path):
    write_circles(tmp_path)
    result = run_stage("tanh_mlp", classic_params({"tanh_mlp": {"epochs": 5}}), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (tmp_path / "models/tanh_mlp").iterdir()} == {"spec.json", "weights.npz"}
    history = (tmp_path / "plots/tanh_mlp/history.csv").read_text().splitlines()
    assert history[0] == "epoch,train_loss,train_accuracy,test_loss,test_accuracy" and len(history) == 6
    evaluation = subprocess.run([stage_python(), "-m", "stages.evaluate_2d", "--model", "tanh_mlp"], cwd=tmp_path,
                                env={**venv_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert evaluation.returncode == 0, evaluation.stderr
    check_model_metrics(load_strict(tmp_path / "metrics/tanh_mlp.json"))
    metrics = load_strict(tmp_path / "plots/tanh_mlp/evaluation.json")
    assert metrics["diverged"] is False and (metrics["trained"], metrics["unit"]) == (5, "epoch")
    assert 0 <= metrics["test"]["accuracy"] <= 1 and set(metrics["test"]["recall"]) == {"0", "1"}
    assert (tmp_path / "plots/tanh_mlp/decision.png").stat().st_size > 0


@pytest.mark.parametrize("stage, override, message", [
    ("tanh_mlp", {"batch_size": 51}, "tanh_mlp.batch_size = 51: larger than the 50 training samples"),
    ("tanh_grid", {"batch_sizes": [10, 500]}, "tanh_grid.batch_sizes = [10, 500]: 500 is larger than the 50"),
    ("tanh_grid", {"batch_sizes": [10], "lrs": [0.1, -1]}, "tanh_grid.lrs = [0.1, -1]: every entry must be"),
    ("tanh_mlp", {"standardize": "yes"}, "tanh_mlp.standardize = 'yes': must be true or false"),
])
def test_bad_params_are_one_line_errors(tmp_path, monkeypatch, stage, override, message):
    module = __import__(f"stages.{stage}", fromlist=["main"])
    write_circles(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(classic_params({stage: override})))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamError) as err:
        module.main(["--params", "params.yaml"])
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()


def test_batch_size_0_is_one_line_and_exit_2(tmp_path):
    write_circles(tmp_path)
    result = run_stage("tanh_mlp", classic_params({"tanh_mlp": {"batch_size": 0}}), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "tanh_mlp.batch_size = 0: must be >= 1" in result.stderr
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()
