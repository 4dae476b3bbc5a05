"""Sharing results between machines with DVC's own machinery, end to end:
a local directory as the DVC remote and a bare git repository as the git
remote. One clone pushes its reproduced pipeline; a fresh `git clone` +
`dvc pull` has every output, so `dvc repro` there runs nothing; an experiment
travels with `dvc exp push` / `dvc exp pull`."""
from __future__ import annotations

import json

import pytest

pytest.register_assert_rewrite("pipeline_repo")
from pipeline_repo import clone_workspace, sh, training_stage  # noqa: E402

pytest_plugins = ["pipeline_repo"]


@pytest.fixture(scope="module")
def pushed(baseline, tmp_path_factory):
    """A clone that pushed its commits to a bare git repository ("hub") and its data to a DVC remote."""
    root = tmp_path_factory.mktemp("sharing")
    hub, storage = root / "hub.git", root / "dvc-storage"
    sh("git", "init", "-q", "--bare", "-b", "main", str(hub), cwd=root)
    pusher = clone_workspace(baseline.path, root / "pusher")
    sh("dvc", "remote", "add", "-d", "storage", str(storage), cwd=pusher)
    sh("git", "commit", "-qam", "Share data through a DVC remote", cwd=pusher)
    sh("git", "remote", "add", "hub", str(hub), cwd=pusher)
    sh("git", "push", "-q", "hub", "HEAD:main", cwd=pusher)
    sh("dvc", "push", cwd=pusher)
    return pusher, hub


def test_fresh_clone_pulls_everything_and_has_nothing_to_run(pushed, tmp_path):
    _, hub = pushed
    fresh = tmp_path / "fresh"
    sh("git", "clone", "-q", str(hub), str(fresh), cwd=tmp_path)
    assert not (fresh / ".dvc" / "cache").exists()
    sh("dvc", "pull", cwd=fresh)
    assert any((fresh / ".dvc" / "cache").rglob("*")), "dvc pull fetched nothing"
    assert "up to date" in sh("dvc", "status", cwd=fresh)
    repro = sh("dvc", "repro", cwd=fresh)
    assert "Running stage" not in repro, repro


def experiment(repo, name: str) -> dict:
    """The params and metrics of experiment ``name`` from ``dvc exp show --json``."""
    for commit in json.loads(sh("dvc", "exp", "show", "--json", cwd=repo)):
        for entry in commit.get("experiments") or []:
            if entry["name"] == name:
                data = entry["revs"][0]["data"]
                return {"params": data["params"], "metrics": data["metrics"]}
    raise AssertionError(f"experiment {name} is not in `dvc exp show` of {repo}")


def test_experiment_travels_through_git_and_the_dvc_remote(pushed, tmp_path):
    pusher, hub = pushed
    stage = training_stage(pusher)
    if stage is None:
        pytest.skip("dvc.yaml has no stage that reads `train` and writes metrics")
    sh("dvc", "exp", "run", "-n", "shared-run", "-S", "train.lr=0.1", stage, cwd=pusher)
    sh("dvc", "exp", "push", "hub", "shared-run", cwd=pusher)

    colleague = tmp_path / "colleague"
    sh("git", "clone", "-q", str(hub), str(colleague), cwd=tmp_path)
    sh("dvc", "exp", "pull", "origin", "shared-run", cwd=colleague)
    assert experiment(colleague, "shared-run") == experiment(pusher, "shared-run")
    sh("dvc", "exp", "apply", "shared-run", cwd=colleague)
    status = sh("dvc", "status", stage, cwd=colleague)
    assert "up to date" in status, f"the outputs of {stage} did not come with the experiment:\n{status}"
