"""`dvc exp apply` in a clone whose DVC cache lacks outputs it never built (docs/experiments.md,
Troubleshooting): the apply names them in `Checkout failed`, applies the params and dvc.lock all
the same, and `dvc repro` then builds exactly the missing outputs, with the bytes the lock records.

A fresh clone that ran a targeted experiment before anything else lacks every other stage's
outputs. Rebuilding all of them costs minutes, so here the clone's cache lacks one cheap model
(`mlp_moons`): the mechanism is the same, whatever is missing.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

pytest.register_assert_rewrite("pipeline_repo")
from conftest import venv_env  # noqa: E402
from pipeline_repo import GIT_ENV, sh  # noqa: E402

pytest_plugins = ["pipeline_repo"]

NEVER_BUILT = "mlp_moons"            # its model is not in this clone's cache
EXPERIMENT = "perceptron.max_epochs=20"
TARGET = "evaluate_2d@perceptron"


def cache_object(cache, md5: str):
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def test_exp_apply_with_outputs_missing_from_the_cache_then_dvc_repro_builds_just_those(baseline, tmp_path):
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(baseline.path), str(clone), cwd=tmp_path)
    # The baseline's cache, hard-linked (cheap), less the objects of the stage never built here.
    cache = tmp_path / "cache"
    shutil.copytree(baseline.path / ".dvc" / "cache", cache, copy_function=os.link)
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    missing = [out for out in lock[NEVER_BUILT]["outs"]
               if cache_object(cache, out["md5"]).exists() and out["md5"].endswith(".dir")]
    assert missing, f"{NEVER_BUILT} has no folder output in the cache: nothing to take away"
    for out in missing:
        cache_object(cache, out["md5"]).unlink()
    (clone / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {cache}\n")
    env = {**venv_env(), **GIT_ENV}

    # A fresh clone's first command: nothing is checked out, the experiment builds what it needs.
    ran = sh("dvc", "exp", "run", "-S", EXPERIMENT, TARGET, cwd=clone)
    name = re.search(r"Ran experiment\(s\): (\S+)", ran).group(1)
    experiment = {path: (clone / path).read_text() for path in ("params.yaml", "dvc.lock", "metrics/perceptron.json")}
    # Back to the commit, as docs/experiments.md says, so that the apply has something to bring back.
    sh("git", "restore", "params.yaml", "dvc.lock", "metrics", "plots", cwd=clone)
    assert "max_epochs: 20" not in (clone / "params.yaml").read_text()

    applied = subprocess.run(["dvc", "exp", "apply", name], cwd=clone, env=env, capture_output=True, text=True)
    assert applied.returncode != 0 and "Checkout failed" in applied.stderr + applied.stdout, applied
    assert f"models/{NEVER_BUILT}" in applied.stderr + applied.stdout, applied
    params = yaml.safe_load((clone / "params.yaml").read_text())
    assert params["perceptron"]["max_epochs"] == 20, "the params were not applied"
    assert (clone / "metrics" / "perceptron.json").read_text() == experiment["metrics/perceptron.json"]

    repro = sh("dvc", "repro", cwd=clone)
    # The missing model, and the report, which the targeted run left stale (docs/experiments.md).
    assert re.findall(r"Running stage '([^']+)'", repro) == [NEVER_BUILT, "report"], repro
    assert (clone / "models" / NEVER_BUILT).is_dir()
    assert "up to date" in sh("dvc", "status", cwd=clone)
    # Everything else is the experiment's: its params, metrics and lock, the rebuilt model's bytes too.
    assert (clone / "params.yaml").read_text() == experiment["params.yaml"]
    assert (clone / "metrics" / "perceptron.json").read_text() == experiment["metrics/perceptron.json"]
    after, before = (yaml.safe_load(text)["stages"] for text in ((clone / "dvc.lock").read_text(), experiment["dvc.lock"]))
    assert {stage: entry for stage, entry in after.items() if stage != "report"} == \
        {stage: entry for stage, entry in before.items() if stage != "report"}
