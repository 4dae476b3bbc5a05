"""The whole pipeline in a throw-away copy of the repository, on tiny parameters:
`dvc repro`, a no-op second `dvc repro`; `train.lr` and an edit of shared code
reach every stage that uses them (`dvc status`). Experiments: tests/test_experiments.py."""
from __future__ import annotations

import json

import pytest
import yaml

pytest.register_assert_rewrite("pipeline_repo")
from pipeline_repo import clone_workspace, load_strict, metrics_files, sh  # noqa: E402

pytest_plugins = ["pipeline_repo"]


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
