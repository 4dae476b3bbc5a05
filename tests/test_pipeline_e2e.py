"""The whole pipeline in a throw-away copy of the repository, on tiny parameters:
`dvc repro`, a no-op second `dvc repro`; `train.lr` and an edit of shared code
reach every stage that uses them (`dvc status`); `dvc exp run -S train.lr=0.1`
and `dvc metrics diff`, as a user would; and a small grid through DVC's queue,
`dvc exp run --queue -S train.lr=0.1,0.01` then `dvc exp run --run-all -j 2`
(which is `dvc queue start -j 2` and waiting for both), read back with
`dvc exp show`."""
from __future__ import annotations

import json

import pytest
import yaml

pytest.register_assert_rewrite("pipeline_repo")
from pipeline_repo import (  # noqa: E402
    clone_workspace, load_strict, metrics_files, run_queue, sh, training_stage)

pytest_plugins = ["pipeline_repo"]

GRID = (0.1, 0.01)


def test_repro_then_nothing_to_do(baseline, tmp_path):
    assert "Running stage" in baseline.repro_output
    assert metrics_files(baseline.path), "the pipeline wrote no metrics"
    for path in metrics_files(baseline.path):
        load_strict(path)
    repo = clone_workspace(baseline.path, tmp_path / "workspace")
    assert "up to date" in sh("dvc", "status", cwd=repo)
    second = sh("dvc", "repro", cwd=repo)
    assert "Running stage" not in second
    sh("dvc", "plots", "show", "--json", cwd=repo)


def changed_stages(repo) -> set[str]:
    return set(json.loads(sh("dvc", "status", "--json", cwd=repo)))


def stages_reading(repo, key: str) -> set[str]:
    """The stages (``name@item`` for foreach ones) whose dvc.yaml `params` include ``key`` or its section."""
    names = set()
    for name, spec in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].items():
        params = [p for p in spec.get("do", spec).get("params", []) if isinstance(p, str)]
        if key in params or key.split(".")[0] in params:
            names |= {f"{name}@{item}" for item in spec["foreach"]} if "foreach" in spec else {name}
    return names


def test_train_lr_and_shared_code_reach_every_stage_that_uses_them(baseline, tmp_path):
    """Nothing is run: `dvc status` lists what a change would rerun."""
    repo = clone_workspace(baseline.path, tmp_path / "workspace")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["lr"] = 0.1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    expected = stages_reading(repo, "train.lr")
    assert {"mlp_moons", "imdb_train", "mri_model@cnn_improved"} <= expected
    assert changed_stages(repo) == expected

    sh("git", "checkout", "params.yaml", cwd=repo)
    with open(repo / "nnlab" / "metrics.py", "a") as module:
        module.write("# an edit\n")
    mri = ("simple_nn1", "simple_nn2", "cnn1", "cnn_improved")
    changed = changed_stages(repo)
    # Scoring code reaches every evaluate stage, and no training stage: a new metric retrains nothing.
    assert {f"mri_evaluate@{name}" for name in mri} | {"imdb_evaluate", "mnist_evaluate"} <= changed
    assert not {f"mri_model@{name}" for name in mri} & changed


def test_experiment_changes_metrics(baseline, tmp_path):
    """The README's `dvc exp run -S train.lr=0.1`, on one stage: the test above shows which stages it reaches."""
    repo = clone_workspace(baseline.path, tmp_path / "workspace")
    sh("dvc", "exp", "run", "-S", "train.lr=0.1", training_stage(repo), cwd=repo)
    diff = json.loads(sh("dvc", "metrics", "diff", "--json", cwd=repo))
    changed = {path for path, values in diff.items() if any(v.get("diff") for v in values.values())}
    assert changed, f"train.lr=0.1 changed no metric: {diff}"
    for path in metrics_files(repo):
        load_strict(path)
    shown = sh("dvc", "exp", "show", "--json", cwd=repo)
    assert "train.lr" in shown or '"lr": 0.1' in shown


def experiment_runs(repo) -> dict[str, dict]:
    """``dvc exp show --json`` as {experiment name: {"state", "lr", "metrics"}}."""
    runs = {}
    for commit in json.loads(sh("dvc", "exp", "show", "--json", cwd=repo)):
        for experiment in commit.get("experiments") or []:
            data = (experiment.get("revs") or [{}])[0].get("data") or {}
            params = data.get("params", {}).get("params.yaml", {}).get("data", {})
            runs[experiment["name"]] = {
                "state": experiment["executor"]["state"] if experiment.get("executor") else "success",
                "lr": params.get("train", {}).get("lr"),
                "metrics": data.get("metrics"),
            }
    return runs


def test_queued_grid_runs_in_parallel_and_compares(baseline, tmp_path):
    stage = training_stage(baseline.path)
    if stage is None:
        pytest.skip("dvc.yaml has no stage that reads `train` and writes metrics")
    repo = clone_workspace(baseline.path, tmp_path / "workspace")
    grid = ",".join(map(str, GRID))
    sh("dvc", "exp", "run", "--queue", "-S", f"train.lr={grid}", stage, cwd=repo)
    try:
        run_queue(repo, jobs=2)
    finally:
        sh("dvc", "queue", "stop", "--kill", cwd=repo)
    runs = experiment_runs(repo)
    failed = [name for name, run in runs.items() if run["state"] != "success"]
    assert not failed, "\n".join(sh("dvc", "queue", "logs", name, cwd=repo) for name in failed)
    assert sorted(run["lr"] for run in runs.values()) == sorted(GRID), runs
    first, second = (run["metrics"] for run in runs.values())
    assert first and first != second, f"train.lr={grid} gave the same metrics in {stage}: {runs}"

    table = sh("dvc", "exp", "show", "--only-changed", "--md", cwd=repo)
    for name in runs:
        assert f"[{name}]" in table, table
