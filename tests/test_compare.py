"""python -m nnlab.compare: experiments side by side in a 200-column terminal, with the data
source of every figure and the figures a run left stale."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import yaml

from nnlab.compare import Revision, render, rows, stale_stages

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
CODE = "print('train')\n"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def lock(train_lr: float, model_md5: str, scored_md5: str, metrics: dict) -> dict:
    """A two-stage pipeline: `train` (code + params) writes the model, `evaluate` scores it."""
    return {"schema": "2.0", "stages": {
        "train": {"cmd": "python train.py",
                  "deps": [{"path": "train.py", "hash": "md5", "md5": md5(CODE)}],
                  "params": {"params.yaml": {"model.lr": train_lr}},
                  "outs": [{"path": "models/m", "hash": "md5", "md5": model_md5}]},
        "evaluate": {"cmd": "python evaluate.py",
                     "deps": [{"path": "models/m", "hash": "md5", "md5": scored_md5}],
                     "outs": [{"path": "metrics/m.json", "hash": "md5", "md5": md5(json.dumps(metrics))}]}}}


def commit(repo: Path, lr: float, lock_data: dict, metrics: dict, message: str) -> str:
    (repo / "params.yaml").write_text(yaml.safe_dump({"model": {"lr": lr}, "data": {"source": "synthetic"}}))
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock_data))
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics/m.json").write_text(json.dumps(metrics))
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", message], cwd=repo, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


def revision_entry(rev: str, name: str | None, lr: float, metrics: dict) -> dict:
    """One revision as `dvc exp show --json` gives it."""
    return {"rev": rev, "name": name, "data": {
        "rev": rev, "params": {"params.yaml": {"data": {"model": {"lr": lr}, "data": {"source": "synthetic"}}}},
        "metrics": {"metrics/m.json": {"data": metrics}}}}


def figures(accuracy: float, source: str) -> dict:
    return {"source": source, "test": {"accuracy": accuracy}, "diverged": False}


def make_repo(tmp_path: Path) -> tuple[Path, list[dict]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    (repo / "train.py").write_text(CODE)
    base_metrics = figures(0.5, "synthetic")
    base = commit(repo, 0.01, lock(0.01, "a" * 32, "a" * 32, base_metrics), base_metrics, "baseline")
    # An untargeted run: the model retrained and rescored.
    fresh_metrics = figures(0.9, "folder")
    fresh = commit(repo, 0.1, lock(0.1, "b" * 32, "b" * 32, fresh_metrics), fresh_metrics, "fresh")
    subprocess.run(["git", "reset", "-q", "--hard", base], cwd=repo, check=True)
    # A run that named the training stage: a new model, the old scores.
    stale = commit(repo, 0.3, lock(0.3, "c" * 32, "a" * 32, base_metrics), base_metrics, "targeted")
    subprocess.run(["git", "reset", "-q", "--hard", base], cwd=repo, check=True)
    exp_show = [revision_entry(base, "main", 0.01, base_metrics)]
    exp_show[0]["experiments"] = [
        {"revs": [revision_entry(fresh, "fresh-real", 0.1, fresh_metrics)]},
        {"revs": [revision_entry(stale, "targeted-run", 0.3, base_metrics)]},
    ]
    return repo, exp_show


def test_stale_stages_follow_what_each_commit_recorded(tmp_path):
    repo, exp_show = make_repo(tmp_path)
    fresh, targeted = (entry["revs"][0]["rev"] for entry in exp_show[0]["experiments"])
    assert stale_stages(Revision(repo, exp_show[0]["rev"])) == {}
    assert stale_stages(Revision(repo, fresh)) == {}
    assert stale_stages(Revision(repo, targeted)) == {"evaluate": "models/m changed"}

    (repo / "train.py").write_text("print('edited')\n")   # code edited in the workspace, not rerun
    assert stale_stages(Revision(repo, "workspace")) == {"train": "train.py changed", "evaluate": "train is stale"}
    (repo / "params.yaml").write_text(yaml.safe_dump({"model": {"lr": 0.5}}))
    assert stale_stages(Revision(repo, "workspace"))["train"] == "model.lr changed"


def test_two_experiments_fit_200_columns_with_their_params_figures_and_sources(tmp_path):
    repo, exp_show = make_repo(tmp_path)
    table = rows(exp_show, repo)
    assert [row[0] for row in table] == [f"main ({exp_show[0]['rev'][:7]})", "fresh-real", "targeted-run"]
    _, params, changed, stale = table[1]
    assert params == "model.lr=0.1"
    assert changed == "m: test acc 0.9 [folder] (commit: test acc 0.5 [synthetic])"
    assert stale == "–"
    _, params, changed, stale = table[2]
    assert params == "model.lr=0.3"
    assert changed == "–" and stale == "m"   # the old score is not shown as this run's

    text = render(table, 200)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 200
    fresh_line = next(line for line in lines if "fresh-real" in line)
    assert "model.lr=0.1" in fresh_line and "test acc 0.9 [folder]" in fresh_line
    targeted_line = next(line for line in lines if "targeted-run" in line)
    assert "model.lr=0.3" in targeted_line and targeted_line.rstrip(" │").endswith("m")
    assert "[data source]" in text   # the header too: rich must not read brackets as markup
