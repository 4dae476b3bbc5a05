"""Resource limits: no parameter may exhaust the machine, and no write failure is a traceback.

Each test runs the stages in one process of its own (not a fork of the stage server), so that
the limit reaches them: a driver imports the stage modules once and calls each stage's
``nnlab.cli.run(main)`` as ``python -m stages.<stage>`` would, recording its exit status and
what it printed on stderr.
"""
from __future__ import annotations

import json
import re
import resource
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import ROOT, deep_merge, default_params, venv_env
from pipeline_repo import clone_workspace

pytest_plugins = ["pipeline_repo"]

#: Runs ``[[name, stage, args, params file], ...]`` (argv[1], JSON) in the current folder; prints
#: ``{"runs": {name: [exit status, stderr]}, "peak_mib": this process's peak alone}`` (not the forking
#: pytest's: nnlab.cli.peak_memory_mib).
DRIVER = """
import contextlib, importlib, io, json, sys, traceback
from nnlab.cli import peak_memory_mib, run
runs = {}
for name, stage, args, params in json.loads(sys.argv[1]):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            run(importlib.import_module(f"stages.{stage}").main, [*args, "--params", params])
            status = 0
        except SystemExit as exc:
            status = exc.code
        except BaseException:
            traceback.print_exc()
            status = 1
    runs[name] = [status, stderr.getvalue()]
print(json.dumps({"runs": runs, "peak_mib": peak_memory_mib()}))
"""


def run_limited(cwd, runs: list, limit) -> dict:
    result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(runs)], cwd=cwd, preexec_fn=limit,
                            env={**venv_env(stage_server=False), "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- memory: a size parameter beyond the machine is refused before anything is allocated ------------

ADDRESS_SPACE = 4 * 2**30   # `prlimit --as`: the interpreter with torch maps about 1 GiB of it
#: The cases of issue 29: each grew until the OOM killer ended it (23.7 GB), or ended in an
#: allocator's traceback (3.9 GB, numpy's 59.6 GiB and 119 GiB requests).
HUGE = {
    "tanh_mlp": {"tanh_mlp": {"hidden_units": 10**7}},
    "imdb_train": {"imdb_train": {"hidden_units": "100000,100000"}},
    "imdb_tuned": {"imdb_tuned": {"hidden_units": "100000,100000"}},
    "mlp_moons": {"mlp_moons": {"hidden_units": 10**7}},
    "batch_study": {"batch_study": {"hidden_units": 10**7}},
    "bce_moons": {"bce_moons": {"hidden_units": 10**7}},
    "mri_data": {"data": {"mri": {"synthetic": {"n_train": 10**8}}}},
}


def limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def two_d_split(path, n: int, **extra) -> None:
    """A split of the shape `generate` writes (80/20 of ``n`` points): the stages read its size from the headers."""
    n_test = n // 5
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, X_train=np.zeros((n - n_test, 2)), y_train=np.zeros(n - n_test, dtype=np.int64),
             X_test=np.zeros((n_test, 2)), y_test=np.zeros(n_test, dtype=np.int64), **extra)


def test_size_beyond_the_memory_is_refused_before_allocating(tmp_path):
    two_d_split(tmp_path / "data/generated/moons_1000.npz", 1000)
    two_d_split(tmp_path / "data/generated/moons_2000.npz", 2000)
    two_d_split(tmp_path / "data/generated/circles.npz", 400, grid_x=np.zeros((81, 81)), grid_y=np.zeros((81, 81)))
    runs = []
    for stage, overrides in HUGE.items():
        (tmp_path / f"{stage}.yaml").write_text(yaml.safe_dump(deep_merge(default_params(), overrides)))
        runs.append([stage, stage, [], f"{stage}.yaml"])
    outcome = run_limited(tmp_path, runs, limit_address_space)
    for stage, (status, stderr) in outcome["runs"].items():
        assert status == 2 and len(stderr.splitlines()) == 1, (stage, stderr)
        assert re.fullmatch(rf"error: {stage}\.yaml: \S*(hidden_units|n_train) = .*: needs about [\d.]+ GiB of memory, "
                            r".*; the budget is .* available \(.*NNLAB_MEMORY_BUDGET changes it\)\n", stderr), stderr
    assert outcome["peak_mib"] < ADDRESS_SPACE / 2**20 / 4, outcome["peak_mib"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["data", *(f"{stage}.yaml" for stage in HUGE)])


def test_budget_setting_is_a_share_or_a_size(monkeypatch):
    from nnlab import memory
    from nnlab.errors import ParamError

    free, _ = memory.available()
    for setting, expected in (("50%", free // 2), ("2GiB", 2 * 2**30), ("800MB", 800 * 10**6), ("", int(0.8 * free))):
        monkeypatch.setenv(memory.BUDGET_VARIABLE, setting)
        assert abs(memory.budget()[0] - expected) <= 0.01 * expected, setting
    monkeypatch.setenv(memory.BUDGET_VARIABLE, "lots")
    with pytest.raises(ParamError, match="NNLAB_MEMORY_BUDGET = 'lots': must be a share"):
        memory.budget()


# -- writes: a full disk or `ulimit -f` is one line naming the output, in every stage that writes data ---

FILE_SIZE = 512   # bytes: every stage below writes a larger output
WRITERS = [("generate", []), ("mnist_data", []), ("mnist_normalize", []), ("imdb_data", []), ("imdb_preprocess", []),
           ("mri_data", []), ("mri_normalize", []), ("perceptron", []), ("mlp_moons", []), ("bce_moons", []),
           ("tanh_mlp", []), ("mnist_linear", []), ("mnist_torch", []), ("imdb_train", []), ("imdb_tuned", []),
           ("imdb_logreg", []), *(("mri_train", ["--model", model]) for model in ("simple_nn2", "cnn_improved"))]


def limit_file_size() -> None:
    """`ulimit -f`: Python ignores SIGXFSZ, so a write past the limit fails with EFBIG (or, through
    ndarray.tofile, as a short write without errno)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE, FILE_SIZE))


def snapshot(repo) -> dict:
    return {str(path.relative_to(repo)): (path.stat().st_size, path.stat().st_mtime_ns)
            for folder in ("data", "models", "metrics", "plots", "checkpoints") for path in (repo / folder).rglob("*")
            if path.is_file()}


def test_write_past_the_file_size_limit_is_one_line_naming_the_output(baseline, tmp_path):
    repo = clone_workspace(baseline.path, tmp_path / "workspace")
    before = snapshot(repo)
    runs = [[" ".join([stage, *args]), stage, args, "params.yaml"] for stage, args in WRITERS]
    outcome = run_limited(repo, runs, limit_file_size)
    for name, (status, stderr) in outcome["runs"].items():
        assert status == 2, (name, stderr)
        assert re.fullmatch(r"error: cannot write \S+: (File too large|disk full or file size limit reached "
                            r"\(\d+ requested and \d+ written\))\n", stderr), (name, stderr)
    assert snapshot(repo) == before
    assert not [path for path in repo.rglob(".*.tmp*") if ".dvc" not in path.parts]
