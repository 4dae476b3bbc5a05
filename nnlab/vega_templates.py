"""The Vega-Lite templates of our `dvc plots show` charts, which DVC's own cannot draw.

DVC's templates colour a chart by revision and tell its series apart by dash
pattern only, put loss and accuracy on a linear axis, drop a confusion matrix's
row when a class is never predicted, and draw nothing where a run diverged.
These templates, which dvc.yaml names under ``plots:``, draw:

- ``lines`` and ``lines_log``: a colour and a legend entry per series (a long
  history's ``run`` column, a y column, or a model's history file), dashed per
  revision, points on the lines so that a one-epoch run is seen, integer ticks
  on the epoch or step axis, and a labelled dashed rule where a run diverged (a
  long history's row whose ``status`` is ``diverged``), the legend saying where;
  ``lines_log`` on a log
  scale, for losses that explode.
- ``scatter_log_x``: points over a log x axis (learning rates spanning decades),
  coloured by column where there are several.
- ``bars``: horizontal bars of the y value(s) per x category (``x`` is the
  category, as in DVC's other templates), each bar labelled with its value; a
  category without a value (a diverged run) is a dashed empty box labelled
  "diverged: no score", never a missing bar.
- ``confusion_full`` and ``confusion_full_normalized``: the full K x K matrix of
  ``[{"actual", "predicted"}]`` records, a class that is never predicted keeping
  its column, counts or rates per actual class.

They are built, not committed, beside the offline page template
(``python -m nnlab.plots_page``), into the folder DVC reads named templates from.
"""
from __future__ import annotations

import json
from pathlib import Path


def anchor(name: str) -> str:
    return f"<DVC_METRIC_{name.upper()}>"


X, Y, X_LABEL, Y_LABEL = anchor("x"), anchor("y"), anchor("x_label"), anchor("y_label")
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
DIVERGED = "diverged"
#: A series' name: the run of a long history, else what tells DVC's series apart: the file (its folder for
#: a history.csv) where the chart draws several, and the column where it draws several ("train accuracy").
FILE = "replace(replace(datum.filename, 'plots/', ''), '/history.csv', '')"
SERIES = ("isValid(datum.run) ? datum.run : trim((datum.files > 1 ? " + FILE + " : '') + ' ' + "
          f"(datum.fields > 1 ? replace(datum.field, '_', ' ') : '')) || replace('{Y}', '_', ' ')")
#: Counts the files and columns a chart draws, for SERIES.
SERIES_SOURCES = {"joinaggregate": [{"op": "distinct", "field": "filename", "as": "files"},
                                    {"op": "distinct", "field": "field", "as": "fields"}]}
#: Bars and points are coloured by column where a chart draws several, else by revision.
FIELD_OR_REV = "datum.fields > 1 ? datum.field : datum.rev"
HAS_VALUE = f"isValid(datum['{Y}']) && datum['{Y}'] !== '' && isFinite(toNumber(datum['{Y}']))"
COLOURS = "tableau10"
#: One colour per series, the same in every chart.
SERIES_COLOUR = {"field": "series", "type": "nominal", "title": None, "scale": {"scheme": COLOURS}}


def _frame() -> dict:
    return {"$schema": SCHEMA, "data": {"values": anchor("data")}, "title": {"text": anchor("title"), "anchor": "middle"}}


def lines(*, log_y: bool) -> dict:
    # Epochs and steps are whole numbers: a tick between two (Vega ignores tickMinStep) is not drawn.
    between = "datum.value % 1"
    x = {"field": X, "type": "quantitative", "title": X_LABEL,
         "axis": {"format": "d", "labelExpr": f"{between} ? '' : datum.label",
                  "gridOpacity": {"condition": {"test": between, "value": 0}, "value": 1},
                  "tickOpacity": {"condition": {"test": between, "value": 0}, "value": 1}}}
    y_scale = {"type": "log"} if log_y else {"zero": False}
    colour = SERIES_COLOUR
    diverged = {"filter": f"datum.status === '{DIVERGED}'"}
    return {
        **_frame(), "width": 420, "height": 260,
        # The legend names where a run diverged: "batch=5 (diverged at epoch 2)".
        "transform": [SERIES_SOURCES, {"calculate": SERIES, "as": "run_name"},
                      {"calculate": f"datum.status === '{DIVERGED}' ? datum['{X}'] : null", "as": "diverged_at"},
                      {"joinaggregate": [{"op": "max", "field": "diverged_at", "as": "diverged_at"}],
                       "groupby": ["run_name"]},
                      {"calculate": f"datum.run_name + (isValid(datum.diverged_at) ? ' (diverged at {X} ' "
                                    "+ datum.diverged_at + ')' : '')", "as": "series"}],
        "layer": [
            {"transform": [{"filter": HAS_VALUE}],
             "mark": {"type": "line", "point": True, "tooltip": {"content": "data"}},
             "encoding": {"x": x, "y": {"field": Y, "type": "quantitative", "title": Y_LABEL, "scale": y_scale},
                          "color": colour, "strokeDash": {"field": "rev", "type": "nominal", "title": "revision"}}},
            {"transform": [diverged],
             "mark": {"type": "rule", "strokeDash": [6, 3], "strokeWidth": 2},
             "encoding": {"x": x, "color": colour}},
        ],
    }


def scatter_log_x() -> dict:
    return {
        **_frame(), "width": 420, "height": 260,
        "transform": [SERIES_SOURCES, {"calculate": FIELD_OR_REV, "as": "series"}, {"filter": HAS_VALUE}],
        "mark": {"type": "point", "filled": True, "size": 60, "tooltip": {"content": "data"}},
        "encoding": {"x": {"field": X, "type": "quantitative", "title": X_LABEL, "scale": {"type": "log"}},
                     "y": {"field": Y, "type": "quantitative", "title": Y_LABEL, "scale": {"zero": False}},
                     "color": SERIES_COLOUR,
                     "shape": {"field": "rev", "type": "nominal", "title": "revision"}},
    }


def bars() -> dict:
    category = {"field": X, "type": "nominal", "title": X_LABEL, "sort": None}
    value = {"field": Y, "type": "quantitative", "title": Y_LABEL}
    return {
        **_frame(), "width": 420,
        "transform": [SERIES_SOURCES, {"calculate": FIELD_OR_REV, "as": "series"}],
        "encoding": {"y": category, "yOffset": {"field": "series", "type": "nominal", "sort": None}},
        "layer": [
            {"transform": [{"filter": HAS_VALUE}],
             "mark": {"type": "bar", "tooltip": {"content": "data"}},
             "encoding": {"x": value, "color": SERIES_COLOUR}},
            {"transform": [{"filter": HAS_VALUE}],
             "mark": {"type": "text", "align": "left", "dx": 3, "fontSize": 10},
             "encoding": {"x": value, "text": {"field": Y, "type": "quantitative", "format": ".3~g"}}},
            {"transform": [{"filter": f"!({HAS_VALUE})"}],
             "mark": {"type": "rect", "fillOpacity": 0, "stroke": "grey", "strokeDash": [4, 3]},
             "encoding": {"x": {"value": 0}, "x2": {"value": "width"}}},
            {"transform": [{"filter": f"!({HAS_VALUE})"}],
             "mark": {"type": "text", "align": "left", "dx": 6, "fontStyle": "italic", "color": "dimgray"},
             "encoding": {"x": {"value": 0}, "text": {"value": f"{DIVERGED}: no score"}}},
        ],
    }


def confusion(*, normalized: bool) -> dict:
    """Each record counts 1 in its (actual, predicted) cell and 0 in its actual class's diagonal cell,
    so every actual class has its predicted row even if never predicted; the grid is then filled
    with zeros. Normalised: the rate of each actual class's records; else counts."""
    cells = f"[{{p: datum['{Y}'], n: 1}}, {{p: datum['{X}'], n: 0}}]"
    transform = [
        {"calculate": cells, "as": "cells"}, {"flatten": ["cells"]},
        {"calculate": "datum.cells.p", "as": Y}, {"calculate": "datum.cells.n", "as": "n"},
        {"aggregate": [{"op": "sum", "field": "n", "as": "count"}], "groupby": ["rev", X, Y]},
        {"impute": "count", "key": Y, "groupby": ["rev", X], "value": 0},
        {"impute": "count", "key": X, "groupby": ["rev", Y], "value": 0},
    ]
    if normalized:
        shown, label, dark = "rate", ".2f", "datum.rate > 0.5"
        transform += [
            {"joinaggregate": [{"op": "sum", "field": "count", "as": "actual_total"}], "groupby": ["rev", X]},
            {"calculate": "datum.actual_total > 0 ? datum.count / datum.actual_total : 0", "as": "rate"}]
    else:
        shown, label, dark = "count", "d", "datum.count > datum.largest / 2"
        transform += [{"joinaggregate": [{"op": "max", "field": "count", "as": "largest"}], "groupby": ["rev"]}]
    return {
        **_frame(),
        "facet": {"column": {"field": "rev", "sort": [], "title": None}},
        "spec": {
            "transform": transform, "width": 260, "height": 260,
            "encoding": {"x": {"field": X, "type": "nominal", "sort": "ascending", "title": X_LABEL},
                         "y": {"field": Y, "type": "nominal", "sort": "ascending", "title": Y_LABEL}},
            "layer": [
                {"mark": {"type": "rect", "tooltip": {"content": "data"}},
                 "encoding": {"color": {"field": shown, "type": "quantitative",
                                        "title": "rate per actual class" if normalized else "count",
                                        **({"scale": {"domain": [0, 1]}} if normalized else {})}}},
                {"mark": "text",
                 "encoding": {"text": {"field": shown, "type": "quantitative", "format": label},
                              "color": {"condition": {"test": dark, "value": "white"},
                                        "value": "black"}}},
            ],
        },
    }


def templates() -> dict[str, dict]:
    return {"lines": lines(log_y=False), "lines_log": lines(log_y=True), "scatter_log_x": scatter_log_x(),
            "bars": bars(), "confusion_full": confusion(normalized=False),
            "confusion_full_normalized": confusion(normalized=True)}


def write_templates(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in templates().items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
        written.append(path)
    return written
