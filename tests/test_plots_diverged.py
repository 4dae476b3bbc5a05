"""After an experiment in which runs diverge, `dvc plots show` still draws every declared plot:
no error, and every run of a study a point or a marked gap (the README promises one), and a
diverged model's confusion matrix a column of its own."""
from __future__ import annotations

import json

import pytest
import yaml

pytest.register_assert_rewrite("pipeline_repo")
from conftest import ROOT  # noqa: E402
from pipeline_repo import clone_workspace, sh  # noqa: E402

from nnlab.metrics import NO_PREDICTION  # noqa: E402
from nnlab.plots_page import write_template  # noqa: E402

pytest_plugins = ["pipeline_repo"]

# Every batch size and SimpleNN2 itself blow up at this rate (the tiny lr study already has one run that does).
EXPLODING_LR = "10000"
STUDY_CHARTS = ("MRI SimpleNN2 by batch size (report 001): train accuracy per epoch",
                "MRI SimpleNN2 by batch size (report 001): test accuracy per epoch",
                "MRI CNN3 by learning rate (report 001): test accuracy per epoch")


@pytest.fixture(scope="module")
def shown(baseline, tmp_path_factory) -> dict:
    repo = clone_workspace(baseline.path, tmp_path_factory.mktemp("diverged") / "workspace")
    write_template(repo)
    sh("dvc", "exp", "run", "-S", f"mri_batch_study.lr={EXPLODING_LR}", "-S", f"mri_simple_nn2.lr={EXPLODING_LR}",
       "mri_study@batch", "mri_evaluate@simple_nn2", cwd=repo)
    assert json.loads((repo / "plots/mri_simple_nn2/evaluation.json").read_text())["diverged"]
    return json.loads(sh("dvc", "plots", "show", "--json", cwd=repo))


def test_no_plot_fails_after_runs_diverge(shown):
    assert not shown.get("errors"), shown["errors"]
    declared = [next(iter(entry)) if isinstance(entry, dict) else entry
                for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]]
    missing = [name for name in declared if not shown["data"].get(name)]
    assert not missing, f"drawn nothing for {missing}"


@pytest.mark.parametrize("chart", STUDY_CHARTS)
def test_every_run_has_a_point_or_a_marked_gap(shown, chart):
    (renderer,) = shown["data"][chart]
    values = renderer["content"]["data"]["values"]
    y = renderer["content"]["layer"][0]["encoding"]["y"]["field"]
    runs = {value["run"] for value in values}
    shown_runs = {value["run"] for value in values if value[y] not in ("", None) or value["status"] == "diverged"}
    assert runs and shown_runs == runs
    assert any(value["status"] == "diverged" for value in values), f"{chart}: no run diverged"


def test_a_diverged_model_keeps_its_confusion_matrix_with_a_marked_column(shown):
    (renderer,) = shown["data"]["plots/mri_simple_nn2/confusion.json"]
    values = renderer["content"]["data"]["values"]
    assert values and {value["predicted"] for value in values} == {NO_PREDICTION}
