"""A pytest plugin: one throw-away copy of the repository, reproduced once on tiny
parameters, shared by the end-to-end, sharing, queue and plots tests.

Test modules load it with ``pytest_plugins = ["pipeline_repo"]``, which makes
its session fixture global, so the tiny ``dvc repro`` runs once per test run,
with or without pytest-xdist. tests/conftest.py runs the tests that need it
last, after the unit tests. Tests run DVC in git clones of the baseline
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


def sh(*args: str, cwd: Path, env: dict | None = None) -> str:
    """Run a command (``env``: instead of :func:`venv_env`'s); its stdout, or a failed assert with both streams."""
    result = subprocess.run(args, cwd=cwd, env={**(env or venv_env()), **GIT_ENV}, capture_output=True,
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
    """A git clone of ``baseline`` with its outputs checked out from the baseline's DVC cache, and the
    git-ignored plots templates that `make venv` builds (copied from this checkout, where it did)."""
    sh("git", "clone", "-q", str(baseline), str(dest), cwd=baseline.parent)
    # What `dvc cache dir --local <path>` writes, without a second DVC start (about a second each).
    (dest / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {baseline / '.dvc' / 'cache'}\n")
    sh("dvc", "checkout", "-q", cwd=dest)
    built = ROOT / ".dvc" / "plots_template.html", ROOT / ".dvc" / "plots"
    if all(path.exists() for path in built):
        shutil.copy2(built[0], dest / ".dvc" / built[0].name)
        shutil.copytree(built[1], dest / ".dvc" / built[1].name, dirs_exist_ok=True)
    else:
        from nnlab.plots_page import write_template

        write_template(dest)
    return dest


class Baseline:
    """The reproduced repository and what its first ``dvc repro`` printed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repro_output = (path.parent / "repro.log").read_text()


def expanded_stages(repo: Path) -> dict[str, dict]:
    """dvc.yaml's stages, ``foreach`` expanded to ``name@item``."""
    stages = {}
    for name, stage in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"].items():
        if "foreach" not in stage:
            stages[name] = stage
            continue
        for item in stage["foreach"]:
            stages[f"{name}@{item}"] = yaml.safe_load(yaml.safe_dump(stage["do"]).replace("${item}", str(item)))
    return stages


def stage_outputs(stage: dict) -> list[str]:
    """The paths a stage declares as its outs, metrics and plots."""
    return [next(iter(out)) if isinstance(out, dict) else out
            for kind in ("outs", "metrics", "plots") for out in stage.get(kind, [])]


def independent_halves(repo: Path) -> tuple[list[str], list[str]]:
    """Two sets of stages, about equal in number, that share no data: each with everything
    upstream of it, so each builds on its own. A stage that joins the pipeline's parts (the report)
    is in neither: it runs once both are built."""
    stages = expanded_stages(repo)
    maker = {out: name for name, stage in stages.items() for out in stage_outputs(stage)}
    upstream = {name: {maker[dep] for dep in stage.get("deps", []) if dep in maker} for name, stage in stages.items()}
    part = {}   # stage -> the stage that names its part (union-find)

    def find(stage: str) -> str:
        while part.setdefault(stage, stage) != stage:
            stage = part[stage]
        return stage

    downstream = {before for stages in upstream.values() for before in stages}
    sinks = [stage for stage in upstream if stage not in downstream]
    for stage, before in upstream.items():
        for other in before if stage not in sinks else ():
            part[find(stage)] = find(other)
    joins = {stage for stage in sinks if len({find(before) for before in upstream[stage]}) > 1}
    for stage in set(sinks) - joins:
        for other in upstream[stage]:
            part[find(stage)] = find(other)
    parts: dict[str, list[str]] = {}
    for stage in stages:
        if stage not in joins:
            parts.setdefault(find(stage), []).append(stage)
    halves: tuple[list[str], list[str]] = ([], [])
    for stages in sorted(parts.values(), key=len, reverse=True):
        min(halves, key=len).extend(stages)
    return halves


def build_baseline(repo: Path) -> None:
    """The tiny-params repository, reproduced and committed.

    Its two independent halves (:func:`independent_halves`) are reproduced side by side, each
    by a plain ``dvc repro`` of its stages: one here, one in a git clone that shares this DVC cache.
    The clone's outputs and dvc.lock entries are then brought here, and a last ``dvc repro`` runs
    the stages that join the halves. On two cores this halves the time before the tests that
    need the repository can start; tests/test_pipeline_e2e.py checks that the result is what one
    ``dvc repro`` leaves: a second one has nothing to do.
    """
    repo.mkdir(parents=True)
    copy_repository(repo)
    (repo / "dvc.lock").unlink()   # it records the default run; DVC then rewrites a smaller file after each stage
    tiny = yaml.safe_load((ROOT / "tests/tiny_params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(deep_merge(default_params(), tiny), sort_keys=False))
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "tiny params", cwd=repo)
    here, there = independent_halves(repo)
    other = repo.parent / "other-half"
    sh("git", "clone", "-q", str(repo), str(other), cwd=repo.parent)
    (other / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {repo / '.dvc' / 'cache'}\n")
    logs = [repo.parent / "repro-here.log", repo.parent / "repro-there.log"]
    runs = []
    for cwd, stages, log in ((repo, here, logs[0]), (other, there, logs[1])):
        with open(log, "w") as output:
            runs.append(subprocess.Popen(["dvc", "repro", *stages], cwd=cwd, env={**venv_env(), **GIT_ENV},
                                         stdout=output, stderr=subprocess.STDOUT))
    for run, log in zip(runs, logs):
        assert run.wait(timeout=600) == 0, f"dvc repro failed:\n{log.read_text()}"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    their_lock = yaml.safe_load((other / "dvc.lock").read_text())
    for stage in there:
        entry = lock["stages"][stage] = their_lock["stages"][stage]
        for out in entry.get("outs", []):
            target, source = repo / out["path"], other / out["path"]
            if target.is_dir():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    shutil.rmtree(other)
    last = sh("dvc", "repro", cwd=repo)
    (repo.parent / "repro.log").write_text("".join(log.read_text() for log in logs) + last)
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
    get here builds the repository in the directory the workers share; the
    others wait for it and reuse it. Tests only read it and ``git clone`` it.
    """
    return Baseline(ensure_baseline(shared_directory(tmp_path_factory)))
