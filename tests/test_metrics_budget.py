"""Metrics files hold headline figures only: every leaf of one is a column of `dvc exp show`, so the
default pipeline's committed metrics stay at MAX_COLUMNS at most (22 files of 4 or 5 leaves; a
terminal reads them through `python -m nnlab.compare`, which shows the changed ones)."""
from __future__ import annotations

import json

from conftest import ROOT
from test_dvc_deps import entry_path, expanded_stages, load_dvc_yaml

MAX_COLUMNS = 110


def leaf_count(value) -> int:
    """Columns a metrics value makes: one per leaf, a null included (another run may fill it)."""
    if isinstance(value, dict):
        return sum(leaf_count(child) for child in value.values())
    return 1


def declared_metrics() -> list[str]:
    return sorted({entry_path(entry) for spec in expanded_stages(load_dvc_yaml()).values()
                   for entry in spec.get("metrics", [])})


def test_the_default_pipeline_has_at_most_110_metric_columns():
    files = declared_metrics()
    columns = {path: leaf_count(json.loads((ROOT / path).read_text())) for path in files}
    assert sum(columns.values()) <= MAX_COLUMNS, f"{sum(columns.values())} metric columns: {columns}"


def test_every_metrics_file_is_declared_and_committed():
    """No stale file in metrics/ that no stage writes any more: readers take the folder for the results."""
    on_disk = {f"metrics/{path.name}" for path in (ROOT / "metrics").glob("*.json")}
    assert on_disk == set(declared_metrics())
