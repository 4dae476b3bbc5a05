"""A pytest plugin: one throw-away copy of the repository, reproduced once on tiny
parameters, shared by the end-to-end, sharing, queue and plots tests.

Test modules load it with ``pytest_plugins = ["pipeline_repo"]``, which makes
its session fixture global, so the tiny ``dvc repro`` runs once per test run,
with or without pytest-xdist. tests/conftest.py starts that build in the
background as soon as the tests are collected, and runs the tests that need it
last, so that the unit tests run while it builds. Tests run DVC in git clones of the baseline
(:func:`clone_workspace`), so it stays as committed and no two processes lock
the same DVC repository.
"""
from __future__ import annotations

import fcntl
import json
import os
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
    assert result.returncode == 0, f"{' '.join(args)} failed in {cwd}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def run_queue(repo: Path, jobs: int) -> str:
    """``dvc exp run --run-all -j jobs``: start queue workers as ``dvc queue start -j jobs``
    would, wait for every queued experiment, and return what it printed.

    The workers outlive the command and inherit its stdout and stderr; with
    pipes, as in :func:`sh`, the call would also wait for the idle workers to
    exit, so the output goes through a file. Stop them with ``dvc queue stop``.
    """
    log_path = repo / ".dvc" / "tmp" / "run-all.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        result = subprocess.run(["dvc", "exp", "run", "--run-all", "-j", str(jobs)], cwd=repo,
                                env={**venv_env(), **GIT_ENV}, stdout=log, stderr=subprocess.STDOUT, timeout=600)
    output = log_path.read_text()
    assert result.returncode == 0, output
    return output


def cached_outputs(repo: Path) -> list[str]:
    """The ``outs`` of dvc.yaml that DVC caches: DVC writes them, git must not have them."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text()).get("stages", {})
    paths = []
    for stage in stages.values():
        for out in stage.get("outs", []):
            path, options = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            if (options or {}).get("cache", True):
                paths.append(path.rstrip("/"))
    return paths


def copy_repository(dest: Path) -> None:
    """The working tree as git sees it (tracked and new files), without outputs DVC caches."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    outputs = cached_outputs(ROOT)
    for name in filter(None, files):
        source = ROOT / name
        if any(name == out or name.startswith(out + "/") for out in outputs):
            continue
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def metrics_files(repo: Path) -> list[Path]:
    return sorted((repo / "metrics").glob("*.json"))


def load_strict(path: Path):
    def reject(constant):
        raise ValueError(f"{path}: {constant} is not valid JSON")
    return json.loads(path.read_text(), parse_constant=reject)


def clone_workspace(baseline: Path, dest: Path) -> Path:
    """A git clone of ``baseline`` with its outputs checked out from the baseline's DVC cache."""
    sh("git", "clone", "-q", str(baseline), str(dest), cwd=baseline.parent)
    # What `dvc cache dir --local <path>` writes, without a second DVC start (about a second each).
    (dest / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {baseline / '.dvc' / 'cache'}\n")
    sh("dvc", "checkout", "-q", cwd=dest)
    return dest


class Baseline:
    """The reproduced repository and what its first ``dvc repro`` printed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repro_output = (path.parent / "repro.log").read_text()


def build_baseline(repo: Path) -> None:
    repo.mkdir(parents=True)
    copy_repository(repo)
    tiny = yaml.safe_load((ROOT / "tests/tiny_params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(deep_merge(default_params(), tiny), sort_keys=False))
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "tiny params", cwd=repo)
    (repo.parent / "repro.log").write_text(sh("dvc", "repro", cwd=repo))
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "baseline", cwd=repo)


def shared_directory(tmp_path_factory) -> Path:
    """The temporary directory every pytest-xdist worker of this run shares."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def ensure_baseline(shared: Path) -> Path:
    """Build the baseline in ``shared`` unless a process before this one did; waits for one building it."""
    root = shared / "nnlab-baseline"
    with open(shared / "nnlab-baseline.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "complete").exists():
            shutil.rmtree(root, ignore_errors=True)
            build_baseline(root / "repo")
            (root / "complete").touch()
    return root / "repo"


@pytest.fixture(scope="session")
def baseline(tmp_path_factory) -> Baseline:
    """A copy of the repository on tiny parameters after ``dvc repro``, committed as "baseline".

    Under pytest-xdist each worker has its own session: the first process to
    get here (or the background build that conftest.py starts) builds the
    repository in the directory the workers share; the others wait for it and
    reuse it. Tests only read it and ``git clone`` it. A failed background
    build is redone here, so that its error is reported by the test.
    """
    return Baseline(ensure_baseline(shared_directory(tmp_path_factory)))


if __name__ == "__main__":  # the background build: python tests/pipeline_repo.py SHARED_DIRECTORY
    import sys

    ensure_baseline(Path(sys.argv[1]))
