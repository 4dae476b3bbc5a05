"""Every plot that dvc.yaml declares draws what it says, checked on the default pipeline's
committed outputs: its file is there and not empty, its template and axes are the intended
ones and name columns the file holds, every classifier has its full confusion plot, and every
history draws train and test accuracy per epoch (or step), a study's in long form with every run."""
from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest
from dvc_render.vega_templates import get_template

from conftest import ROOT, venv_env
from test_dvc_deps import expanded_stages, load_dvc_yaml

# Every classifier's evaluate stage writes plots/<model>/confusion.json.
CLASSIFIERS = ("perceptron", "mlp_moons", "bce_moons", "tanh_mlp", "mnist_linear", "mnist_torch", "imdb_train",
               "imdb_tuned", "imdb_logreg", "mri_simple_nn1", "mri_simple_nn2", "mri_cnn1", "mri_cnn_improved",
               "mri_nearest")
# DVC's templates and ours (nnlab/vega_templates.py) that draw y fields against an x field;
# confusion is drawn from records.
TEMPLATES = {"linear", "simple", "scatter", "smooth", "lines", "lines_log", "scatter_log_x", "bars",
             "confusion_full", "confusion_full_normalized"}
TEMPLATE_DIR = ROOT / ".dvc" / "plots"
IMAGE = ".png"
X_OF_HISTORY = ("epoch", "step")


def declared_plots() -> list[tuple[str, dict]]:
    """(id, props) of every top-level plot; a plot over one file has the file as its id."""
    entries = []
    for entry in load_dvc_yaml().get("plots", []):
        (name, props), = entry.items() if isinstance(entry, dict) else ((entry, None),)
        entries.append((name, props or {}))
    return entries


def sources(name: str, props: dict) -> dict[str, list[str]]:
    """``{file: its y columns}`` that a plot draws."""
    y = props.get("y")
    if isinstance(y, dict):
        return {file: [columns] if isinstance(columns, str) else list(columns) for file, columns in y.items()}
    return {name: [y] if isinstance(y, str) else list(y or [])}


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return list(csv.DictReader(path.read_text().splitlines()))


DATA_PLOTS = [(name, props) for name, props in declared_plots() if not name.endswith(IMAGE)]


def test_no_stage_declares_a_folder_of_plots():
    """A folder under a stage's `plots:` draws every file in it with one default template."""
    for stage, spec in expanded_stages(load_dvc_yaml()).items():
        for entry in spec.get("plots", []):
            path = entry if isinstance(entry, str) else next(iter(entry))
            assert Path(path).suffix, f"{stage} declares the folder {path} as plots"


def test_every_image_plot_is_a_drawn_png():
    for name, _ in declared_plots():
        if name.endswith(IMAGE):
            assert (ROOT / name).stat().st_size > 0, name


@pytest.mark.parametrize("name, props", DATA_PLOTS, ids=[name for name, _ in DATA_PLOTS])
def test_every_data_plot_has_its_template_axes_and_data(name, props):
    assert props.get("template", "linear") in TEMPLATES, name
    assert props.get("x") and props.get("y"), f"{name}: no explicit x and y"
    for file, columns in sources(name, props).items():
        rows = read_rows(ROOT / file)
        assert rows, f"{file} is empty"
        for column in [props["x"], *columns]:
            assert column in rows[0], f"{name}: {file} has no column {column!r}"
        for column in columns:
            assert any(row[column] not in ("", None) for row in rows), f"{name}: {file}:{column} is all empty"


def test_every_classifier_has_its_confusion_plot():
    plots = dict(declared_plots())
    for model in CLASSIFIERS:
        props = plots.get(f"plots/{model}/confusion.json")
        assert props is not None, f"{model}: no confusion plot"
        # Report 001's classes are 50/35/14/1 %: only rates per actual class show the small ones.
        template = "confusion_full_normalized" if model.startswith("mri_") else "confusion_full"
        assert (props.get("template"), props.get("x"), props.get("y")) == (template, "actual", "predicted"), model


def history_columns() -> dict[str, set[str]]:
    """``{history file: every y column drawn from it}``, each history plot's x checked on the way."""
    drawn: dict[str, set[str]] = {}
    for name, props in DATA_PLOTS:
        for file, columns in sources(name, props).items():
            if Path(file).name.startswith("history"):
                assert props["x"] in X_OF_HISTORY, f"{name}: x is {props['x']!r}, not the epoch or step"
                drawn.setdefault(file, set()).update(columns)
    return drawn


def is_long(file: str) -> bool:
    """A study's history.csv: a row per run and epoch (nnlab.results.long_history)."""
    return {"run", "status"} <= set(read_rows(ROOT / file)[0])


def test_every_run_history_draws_train_and_test_accuracy():
    for file, columns in history_columns().items():
        if not is_long(file):
            assert {"train_accuracy", "test_accuracy"} <= columns, f"{file} draws only {sorted(columns)}"


def test_every_study_history_is_long_and_holds_every_run_of_its_table():
    """A study's history.csv holds a row per run and epoch, whatever runs params.yaml asks for, so no
    declared column can go missing; every run of table.csv is in it, and train and test accuracy are drawn."""
    long = {file: columns for file, columns in history_columns().items() if is_long(file)}
    assert long, "no study draws a long history"
    for file, columns in long.items():
        assert {"train_accuracy", "test_accuracy"} <= columns, file
        table = read_rows(ROOT / Path(file).parent / "table.csv")
        run_column = next(iter(table[0]))
        assert {row[run_column] for row in table} == {row["run"] for row in read_rows(ROOT / file)}, file


# What DVC adds to every data point, and encodes in place of its anchors.
DVC_FIELDS = {"rev", "filename", "field"}


def fingerprint(spec: dict, *own: str) -> tuple:
    """A vega-lite spec's mark types, scale types and the fields it computes and encodes, which tell
    the templates apart (a normalised confusion colours by a rate, a plain one by a count; a log
    chart has a log scale); the plot's ``own`` fields, which DVC fills in for the template's anchors,
    are left out."""
    text = json.dumps({key: value for key, value in spec.items() if key not in ("data", "title")})
    marks = set(re.findall(r'"mark": (?:\{"type": )?"(\w+)"', text))
    fields = {name for name in re.findall(r'"(?:as|field)": "([^"]*)"', text)
              if "<DVC_" not in name and "::" not in name} - set(own) - DVC_FIELDS
    scales = set(re.findall(r'"scale": \{"type": "(\w+)"', text))
    return sorted(marks), sorted(scales), sorted(fields)


@pytest.fixture(scope="module")
def rendered() -> dict:
    """What `dvc plots show --json` renders from the committed outputs: {plot id: renderers}."""
    result = subprocess.run(["dvc", "plots", "show", "--json"], cwd=ROOT, env=venv_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert not shown.get("errors"), shown["errors"]
    return shown["data"]


def drawn_and_declared_series(values: list[dict], name: str, props: dict) -> tuple[dict[str, list], set[str]]:
    """``{series: its y values}`` of a rendered plot (a series per y column, or per file, or the
    one), and the series dvc.yaml declares for it."""
    files = sources(name, props)
    if len({value.get("field") for value in values}) > 1:
        drawn = {key: [v["dvc_inferred_y_value"] for v in values if v["field"] == key]
                 for key in {v["field"] for v in values}}
        return drawn, {column for columns in files.values() for column in columns}
    if len(files) > 1:
        drawn = {file: [v[columns[0]] for v in values if file.endswith(v["filename"])]
                 for file, columns in files.items()}
        return {file: ys for file, ys in drawn.items() if ys}, set(files)
    (columns,) = files.values()
    return {columns[0]: [value[columns[0]] for value in values]}, set(columns)


@pytest.mark.parametrize("name, props", declared_plots(), ids=[name for name, _ in declared_plots()])
def test_dvc_plots_show_draws_every_plot_as_declared(rendered, name, props):
    assert rendered.get(name), f"dvc plots show draws nothing for {name}"
    (renderer,) = rendered[name]
    if name.endswith(IMAGE):
        assert renderer["type"] == "image", name
        return
    assert renderer["type"] == "vega", name
    spec = renderer["content"]
    template = props.get("template", "linear")
    own = (props["x"], "dvc_inferred_y_value", *(c for columns in sources(name, props).values() for c in columns))
    assert fingerprint(spec, *own) == fingerprint(get_template(template, str(TEMPLATE_DIR)).content, *own), \
        f"{name} is not drawn as {template}"
    assert f'"field": "{props["x"]}"' in json.dumps(spec), f"{name}: x is not {props['x']}"
    values = spec["data"]["values"]
    assert values, f"{name} has no data"
    if template.startswith("confusion"):
        return
    drawn, declared = drawn_and_declared_series(values, name, props)
    assert set(drawn) == declared, f"{name}: draws {sorted(drawn)}, declares {sorted(declared)}"
    for key, ys in drawn.items():
        assert any(y not in ("", None) for y in ys), f"{name}: {key} has no point"
