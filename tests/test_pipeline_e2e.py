"""The whole pipeline in a throw-away copy of the repository, on tiny parameters:
`dvc repro`, a no-op second `dvc repro`, then `dvc exp run -S train.lr=0.1`
and `dvc metrics diff`, as a user would."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, deep_merge, default_params, venv_env

GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def sh(*args: str, cwd: Path) -> str:
    result = subprocess.run(args, cwd=cwd, env={**venv_env(), **GIT_ENV}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def copy_repository(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def metrics_files(repo: Path) -> list[Path]:
    return sorted((repo / "metrics").glob("*.json"))


def load_strict(path: Path):
    def reject(constant):
        raise ValueError(f"{path}: {constant} is not valid JSON")
    return json.loads(path.read_text(), parse_constant=reject)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("nnlab") / "repo"
    repo.mkdir()
    copy_repository(repo)
    tiny = yaml.safe_load((ROOT / "tests/tiny_params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(deep_merge(default_params(), tiny), sort_keys=False))
    sh("git", "init", "-q", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "tiny params", cwd=repo)
    return repo


def test_repro_then_nothing_to_do(repo):
    sh("dvc", "repro", cwd=repo)
    assert metrics_files(repo), "the pipeline wrote no metrics"
    for path in metrics_files(repo):
        load_strict(path)
    assert "up to date" in sh("dvc", "status", cwd=repo)
    second = sh("dvc", "repro", cwd=repo)
    assert "Running stage" not in second
    sh("dvc", "plots", "show", "--json", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "baseline", cwd=repo)


def test_experiment_changes_metrics(repo):
    sh("dvc", "exp", "run", "-S", "train.lr=0.1", cwd=repo)
    diff = json.loads(sh("dvc", "metrics", "diff", "--json", cwd=repo))
    changed = {path for path, values in diff.items() if any(v.get("diff") for v in values.values())}
    assert changed, f"train.lr=0.1 changed no metric: {diff}"
    for path in metrics_files(repo):
        load_strict(path)
    shown = sh("dvc", "exp", "show", "--json", cwd=repo)
    assert "train.lr" in shown or '"lr": 0.1' in shown
