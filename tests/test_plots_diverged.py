"""After an experiment in which runs diverge, `dvc plots show` still draws every declared plot:
no error, and every run of a study a point or a marked gap (the README promises one), and a
diverged model's confusion matrix a column of its own; in headless Chromium a study's chart
shows each run in a colour of its own (a screenshot)."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import yaml
from dvc_render.vega import VegaRenderer
from PIL import Image

pytest.register_assert_rewrite("pipeline_repo")
from conftest import ROOT  # noqa: E402
from pipeline_repo import clone_workspace, sh  # noqa: E402
from test_plots_page import chromium  # noqa: E402

from nnlab.metrics import NO_PREDICTION  # noqa: E402
from nnlab.plots_page import html_template, write_template  # noqa: E402
from nnlab.vega_templates import COLOURS  # noqa: E402

pytest_plugins = ["pipeline_repo"]

# Every batch size and SimpleNN2 itself blow up at this rate (the tiny lr study already has one run that does).
EXPLODING_LR = "10000"
STUDY_CHARTS = ("MRI SimpleNN2 by batch size (report 001): train accuracy per epoch",
                "MRI SimpleNN2 by batch size (report 001): test accuracy per epoch",
                "MRI CNN3 by learning rate (report 001): test accuracy per epoch")


# Vega's "tableau10" scheme, the series colours of our line charts.
TABLEAU10 = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
             "#bab0ac")


@pytest.fixture(scope="module")
def repo(baseline, tmp_path_factory):
    repo = clone_workspace(baseline.path, tmp_path_factory.mktemp("diverged") / "workspace")
    write_template(repo)
    sh("dvc", "exp", "run", "-S", f"mri_batch_study.lr={EXPLODING_LR}", "-S", f"mri_simple_nn2.lr={EXPLODING_LR}",
       "mri_study@batch", "mri_evaluate@simple_nn2", cwd=repo)
    assert json.loads((repo / "plots/mri_simple_nn2/evaluation.json").read_text())["diverged"]
    return repo


@pytest.fixture(scope="module")
def shown(repo) -> dict:
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


def chart_page(renderer: dict, path):
    """A page of one chart as `dvc plots show` draws it, in the offline page template (`dvc plots show
    <target>` takes a file, and draws it with DVC's default template, not the chart dvc.yaml declares)."""
    div = VegaRenderer.DIV.format(id="chart", partial=json.dumps(renderer["content"]))
    path.write_text(html_template().replace("{refresh_tag}", "").replace("{plot_divs}", div), encoding="utf-8")
    return path


def test_a_study_chart_shows_every_run_in_its_own_colour_in_chromium(shown, repo, tmp_path):
    """The lr study's chart (one run that trains, one that stays flat, one that diverges), as a reader sees it."""
    assert COLOURS == "tableau10"
    browser = chromium()
    (renderer,) = shown["data"][STUDY_CHARTS[2]]
    page = chart_page(renderer, tmp_path / "chart.html")
    screenshot = tmp_path / "chart.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
         "--window-size=900,500", f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).reshape(-1, 3)
    drawn = {colour for colour in TABLEAU10
             if (pixels == [int(colour[k:k + 2], 16) for k in (1, 3, 5)]).all(axis=1).any()}
    runs = len(yaml.safe_load((repo / "params.yaml").read_text())["mri_lr_study"]["lrs"])
    assert len(drawn) >= runs, f"{screenshot}: {len(drawn)} series colours for {runs} runs"
