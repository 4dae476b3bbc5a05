"""Experiments the way a user runs, compares, applies and shares them, in one clone of the
tiny-params baseline (tests/pipeline_repo.py) with a bare git repository ("hub") as its git
remote and a local folder as its DVC remote.

One queued grid, `dvc exp run --queue -S train.lr=2.0,0.001 imdb_evaluate` (docs/experiments.md's
form) run by `dvc exp run --run-all -j 2` (which is `dvc queue start -j 2` and waiting for both), makes the
two experiments every test here reads: `dvc exp show`, `dvc metrics diff` after
`dvc exp apply`, the model `python -m nnlab.predict` uses, and `dvc exp push`/`dvc exp pull`
to a colleague's clone. One grid instead of one `dvc exp run` per test keeps this file to two
trainings (side by side) of the suite's 5 minutes; the tests run in file order, each applying
the experiment it needs first.
"""
from __future__ import annotations

import json

import pytest
import yaml

pytest.register_assert_rewrite("pipeline_repo")
from pipeline_repo import clone_workspace, load_strict, metrics_files, run_queue, sh  # noqa: E402
from test_artifacts import REVIEWS, predict  # noqa: E402

pytest_plugins = ["pipeline_repo"]

# imdb_train's model (an artifact nnlab.predict serves) and the metrics scored from it.
STAGE = "imdb_evaluate"
GRID = {"fast": 2.0, "slow": 0.001}
UNCOMMITTED_LOG_EVERY = 7   # a key that changes no output


def experiment_runs(repo) -> dict[str, dict]:
    """``dvc exp show --json`` as {experiment name: {"state", "lr", "params", "metrics"}}."""
    runs = {}
    for commit in json.loads(sh("dvc", "exp", "show", "--json", cwd=repo)):
        for experiment in commit.get("experiments") or []:
            data = (experiment.get("revs") or [{}])[0].get("data") or {}
            params = data.get("params", {}).get("params.yaml", {}).get("data", {})
            runs[experiment["name"]] = {
                "state": experiment["executor"]["state"] if experiment.get("executor") else "success",
                "lr": params.get("train", {}).get("lr"),
                "params": data.get("params"),
                "metrics": data.get("metrics"),
            }
    return runs


class Lab:
    """The clone that ran the grid: ``names`` maps "fast"/"slow" to DVC's experiment names."""

    def __init__(self, path, hub, names, runs) -> None:
        self.path, self.hub, self.names, self.runs = path, hub, names, runs


@pytest.fixture(scope="module")
def lab(baseline, tmp_path_factory) -> Lab:
    root = tmp_path_factory.mktemp("experiments")
    hub, storage = root / "hub.git", root / "dvc-storage"
    sh("git", "init", "-q", "--bare", "-b", "main", str(hub), cwd=root)
    repo = clone_workspace(baseline.path, root / "lab")
    sh("dvc", "remote", "add", "-d", "storage", str(storage), cwd=repo)
    sh("git", "commit", "-qam", "Share data through a DVC remote", cwd=repo)
    sh("git", "remote", "add", "hub", str(hub), cwd=repo)
    sh("git", "push", "-q", "hub", "HEAD:main", cwd=repo)
    sh("dvc", "push", cwd=repo)

    # An uncommitted edit in the workspace: docs/experiments.md says queued runs start from it.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["imdb_train"]["log_every"] = UNCOMMITTED_LOG_EVERY
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    grid = ",".join(str(lr) for lr in GRID.values())
    sh("dvc", "exp", "run", "--queue", "-S", f"train.lr={grid}", STAGE, cwd=repo)
    sh("git", "checkout", "params.yaml", cwd=repo)
    try:
        run_queue(repo, jobs=2)
    finally:
        sh("dvc", "queue", "stop", "--kill", cwd=repo)
    runs = experiment_runs(repo)
    failed = [name for name, run in runs.items() if run["state"] != "success"]
    assert not failed, "\n".join(sh("dvc", "queue", "logs", name, cwd=repo) for name in failed)
    names = {label: name for label, lr in GRID.items() for name, run in runs.items() if run["lr"] == lr}
    assert sorted(names) == sorted(GRID), f"the queue did not run train.lr={grid}: {runs}"
    return Lab(repo, hub, names, runs)


def test_queued_grid_runs_in_parallel_and_compares(lab):
    fast, slow = (lab.runs[lab.names[label]]["metrics"] for label in ("fast", "slow"))
    assert fast and fast != slow, f"train.lr={list(GRID.values())} gave the same metrics: {lab.runs}"
    table = sh("dvc", "exp", "show", "--only-changed", "--md", cwd=lab.path)
    for name in lab.names.values():
        assert f"[{name}]" in table, table


def test_queued_runs_start_from_the_workspace_edits(lab):
    """What docs/experiments.md measures: a queued run is the last commit plus the workspace's
    uncommitted edits to tracked files plus its -S changes."""
    for name in lab.names.values():
        params = lab.runs[name]["params"]["params.yaml"]["data"]
        assert params["imdb_train"]["log_every"] == UNCOMMITTED_LOG_EVERY, name


def test_applied_experiment_changes_metrics(lab):
    sh("dvc", "exp", "apply", lab.names["fast"], cwd=lab.path)
    diff = json.loads(sh("dvc", "metrics", "diff", "--json", cwd=lab.path))
    changed = {path for path, values in diff.items() if any(v.get("diff") for v in values.values())}
    assert "metrics/imdb_train.json" in changed, f"train.lr=2.0 changed no imdb_train metric: {diff}"
    for path in metrics_files(lab.path):
        load_strict(path)


def test_exp_apply_brings_back_the_model_that_predict_uses(lab):
    seen = {}
    for label, lr in GRID.items():
        sh("dvc", "exp", "apply", lab.names[label], cwd=lab.path)
        spec = json.loads((lab.path / "models/imdb_train/spec.json").read_text())
        assert spec["config"]["lr"] == lr
        seen[label] = predict(lab.path, "imdb", "--model", "imdb_train", *REVIEWS)
        assert [p["input"] for p in seen[label]] == REVIEWS
    assert seen["slow"] != seen["fast"], "two experiments' models predicted the same"


def test_fresh_clone_pulls_everything_and_has_nothing_to_run(lab, tmp_path):
    fresh = tmp_path / "fresh"
    sh("git", "clone", "-q", str(lab.hub), str(fresh), cwd=tmp_path)
    assert not (fresh / ".dvc" / "cache").exists()
    sh("dvc", "pull", cwd=fresh)
    assert any((fresh / ".dvc" / "cache").rglob("*")), "dvc pull fetched nothing"
    assert "up to date" in sh("dvc", "status", cwd=fresh)
    repro = sh("dvc", "repro", cwd=fresh)
    assert "Running stage" not in repro, repro


def test_experiment_travels_through_git_and_the_dvc_remote(lab, tmp_path):
    name = lab.names["fast"]
    sh("dvc", "exp", "push", "hub", name, cwd=lab.path)
    colleague = tmp_path / "colleague"
    sh("git", "clone", "-q", str(lab.hub), str(colleague), cwd=tmp_path)
    sh("dvc", "exp", "pull", "origin", name, cwd=colleague)
    theirs = experiment_runs(colleague)[name]
    assert (theirs["params"], theirs["metrics"]) == (lab.runs[name]["params"], lab.runs[name]["metrics"])
    sh("dvc", "exp", "apply", name, cwd=colleague)
    status = sh("dvc", "status", STAGE, cwd=colleague)
    assert "up to date" in status, f"the outputs of {STAGE} did not come with the experiment:\n{status}"
