"""The stages mlp_moons, batch_study and bce_moons, run in-process on a temporary copy of the outputs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import deep_merge, default_params, tiny_overrides
from nnlab.cli import run
from nnlab.metrics import NO_PREDICTION
from nnlab.params import Section
from nnlab.results import check_model_evaluation, check_model_metrics
from stages import batch_study, bce_moons, evaluate_2d, generate, mlp_moons

STAGES = {"mlp_moons": mlp_moons, "batch_study": batch_study, "bce_moons": bce_moons}
MODELS = ("mlp_moons", "bce_moons")


def params_with(*overrides: dict) -> dict:
    params = default_params()
    for override in overrides:
        params = deep_merge(params, override)
    return params


TINY = {name: section for name, section in tiny_overrides().items() if name in STAGES}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory holding the moons datasets as the generate stage writes them (without its scatter plots)."""
    path = tmp_path_factory.mktemp("nn")
    datasets = generate.build(Section(default_params()["generate"], file="params.yaml", prefix="generate"))
    for name in ("moons_1000", "moons_2000"):
        (path / generate.DATA_DIR).mkdir(parents=True, exist_ok=True)
        np.savez(path / generate.DATA_DIR / f"{name}.npz", **datasets[name].arrays())
    return path


def run_stage(name: str, params: dict, workdir, monkeypatch, capsys) -> tuple[int, str]:
    """Run a stage as `python -m stages.<name>` would, and a model's evaluation after it;
    return (exit code, stderr)."""
    monkeypatch.chdir(workdir)
    params_file = workdir / f"{name}.params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    capsys.readouterr()
    try:
        run(STAGES[name].main, ["--params", str(params_file)])
        if name in MODELS:
            run(evaluate_2d.main, ["--model", name])
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def read_evaluation(workdir, name: str) -> dict:
    return json.loads((workdir / "plots" / name / "evaluation.json").read_text())


def read_metrics(workdir, name: str) -> dict:
    return json.loads((workdir / "metrics" / f"{name}.json").read_text())


@pytest.mark.parametrize("name", STAGES)
def test_tiny_run_writes_every_output(name, workdir, monkeypatch, capsys):
    code, err = run_stage(name, params_with(TINY), workdir, monkeypatch, capsys)
    assert code == 0, err
    metrics = read_metrics(workdir, name)
    if name in MODELS:
        check_model_metrics(metrics)
        evaluation = read_evaluation(workdir, name)
        check_model_evaluation(evaluation)
        assert evaluation["source"] == "generated" and evaluation["diverged"] is False
        assert 0 <= evaluation["test"]["accuracy"] <= 1 and evaluation["train"]["loss"] > 0
        assert (workdir / "plots" / name / "confusion.json").is_file()
    else:
        table = pd.read_csv(workdir / "plots" / name / "table.csv")
        assert not table["diverged"].any() and table["final_test_accuracy"].between(0, 1).all()
        assert metrics == {"source": "generated", "best": {"run": metrics["best"]["run"], "test_accuracy": table["final_test_accuracy"].max()},
                           "diverged_runs": 0}
    plots = workdir / "plots" / name
    histories = sorted(plots.glob("history*.csv"))
    assert histories and list(plots.glob("*.png"))
    for history in histories:
        frame = pd.read_csv(history)
        per_run = [frame] if name in MODELS else [runs for _, runs in frame.groupby("run")]   # a study: long format
        for run in per_run:
            assert {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"} <= set(run.columns)
            x = "step" if "step" in run.columns else "epoch"
            assert run[x].is_monotonic_increasing


def test_batch_study_runs_each_size_and_repeats_its_metrics_exactly(workdir, monkeypatch, capsys):
    metrics = []
    for _ in range(2):
        code, err = run_stage("batch_study", params_with(TINY), workdir, monkeypatch, capsys)
        assert code == 0, err
        metrics.append((workdir / "metrics" / "batch_study.json").read_bytes())
    assert metrics[0] == metrics[1]
    table = pd.read_csv(workdir / "plots" / "batch_study" / "table.csv", dtype={"batch_size": str})
    assert list(table["batch_size"]) == ["full", "10", "100"]
    assert list(table["updates"]) == [2, 2 * 80, 2 * 8]  # 2 epochs over 800 training points
    assert read_metrics(workdir, "batch_study")["best"]["run"] in {"full", "10", "100"}


def test_mlp_moons_defaults_reach_the_report(workdir, monkeypatch, capsys):
    """Report 002 §3: about 92% test accuracy; the acceptance bar is 0.90."""
    code, err = run_stage("mlp_moons", params_with(), workdir, monkeypatch, capsys)
    assert code == 0, err
    evaluation = read_evaluation(workdir, "mlp_moons")
    assert evaluation["test"]["accuracy"] >= 0.90 and (evaluation["trained"], evaluation["unit"]) == (1500, "step")


def test_diverged_run_writes_nulls(workdir, monkeypatch, capsys):
    code, err = run_stage("mlp_moons", params_with(TINY, {"mlp_moons": {"lr": 1e6, "steps": 100}}),
                          workdir, monkeypatch, capsys)
    assert code == 0, err
    metrics = read_metrics(workdir, "mlp_moons")
    check_model_metrics(metrics)
    assert metrics["diverged"] is True and metrics["test"]["accuracy"] is None
    evaluation = read_evaluation(workdir, "mlp_moons")
    assert evaluation["diverged_at"] <= 100
    assert evaluation["train"] == {"loss": None, "accuracy": None} and evaluation["test"]["accuracy"] is None
    # The confusion plot is still drawn: every test point in the "none: diverged" column.
    confusion = json.loads((workdir / "plots/mlp_moons/confusion.json").read_text())
    assert confusion and {record["predicted"] for record in confusion} == {NO_PREDICTION}


@pytest.mark.parametrize("name, override, key", [
    ("mlp_moons", {"hidden_units": "20,x"}, "mlp_moons.hidden_units = '20,x'"),
    ("mlp_moons", {"batch_size": 0}, "mlp_moons.batch_size = 0"),
    ("mlp_moons", {"lr": -1}, "mlp_moons.lr = -1"),
    ("mlp_moons", {"init": "ones"}, "mlp_moons.init = 'ones'"),
    ("batch_study", {"batch_sizes": [10, 5000]}, "batch_study.batch_sizes = [10, 5000]"),
    ("bce_moons", {"batch_size": 5000}, "bce_moons.batch_size = 5000"),
    ("bce_moons", {"epoch": 3}, "unknown key bce_moons.epoch"),
])
def test_bad_parameter_is_one_line_naming_the_key(name, override, key, workdir, monkeypatch, capsys):
    before = sorted(p.name for p in (workdir / "plots").rglob("*"))
    code, err = run_stage(name, params_with(TINY, {name: override}), workdir, monkeypatch, capsys)
    assert code == 2
    assert err.startswith("error: ") and key in err and err.count("\n") == 1
    assert sorted(p.name for p in (workdir / "plots").rglob("*")) == before
