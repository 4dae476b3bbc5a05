"""The results report never compares a synthetic figure with a real one."""
import json

import pytest

from nnlab.errors import DataError
from nnlab.report import build_rows, load_references, render
from conftest import ROOT


def write_metrics(tmp_path, value):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/m.json").write_text(json.dumps({"test": {"accuracy": value}}))


def rows_for(tmp_path, dataset, source):
    ref = {"study": "s", "figure": "test accuracy", "report": 0.8925,
           "ours": ["metrics/m.json", "test", "accuracy"], "dataset": dataset}
    return build_rows([ref], {dataset: {"source": source}}, tmp_path)


def test_real_data_gets_a_difference(tmp_path):
    write_metrics(tmp_path, 0.9)
    row = rows_for(tmp_path, "imdb", "aclimdb")[0]
    assert row["ours"] == "90.0%" and row["difference"] == "+0.8 pts"
    assert "real IMDB" in row["data"]


def test_synthetic_data_is_never_comparable(tmp_path):
    write_metrics(tmp_path, 0.9)
    row = rows_for(tmp_path, "imdb", "synthetic")[0]
    assert row["difference"] == "not comparable: synthetic data"
    assert "SYNTHETIC" in row["data"] and "SYNTHETIC" in render([row])


def test_the_embedded_subset_is_real_but_not_compared_with_the_reports_50k(tmp_path):
    write_metrics(tmp_path, 0.9)
    row = rows_for(tmp_path, "imdb", "embedded")[0]
    assert row["data"] == "real IMDB reviews, 4,000-review subset (aclImdb train split)"
    assert row["report"] == "89.2%" and row["difference"].startswith("not comparable: another data size")


def test_diverged_value_is_shown_as_null(tmp_path):
    write_metrics(tmp_path, None)
    row = rows_for(tmp_path, "mnist", "embedded")[0]
    assert row["ours"] == "null (diverged)" and row["difference"] == "–"


def test_a_run_left_out_of_the_grid_is_marked_not_run(tmp_path):
    write_metrics(tmp_path, 0.5)
    ref = {"study": "s", "figure": "f", "report": 1.0, "ours": ["metrics/m.json", "test", "f1"],
           "dataset": "generated"}
    row = build_rows([ref], {}, tmp_path)[0]
    assert row["ours"].startswith("not run") and row["difference"] == "–"


def test_missing_metrics_file_is_named(tmp_path):
    ref = {"study": "s", "figure": "f", "report": 1.0, "ours": ["metrics/none.json", "test"],
           "dataset": "generated"}
    with pytest.raises(DataError, match=r"metrics/none.json: not found"):
        build_rows([ref], {}, tmp_path)


def test_every_reference_row_is_well_formed():
    rows = load_references(ROOT / "references.yaml")
    assert len(rows) >= 30
    assert {row["dataset"] for row in rows} == {"generated", "mnist", "imdb", "mri"}


def test_a_study_table_row_is_read_by_its_columns(tmp_path):
    (tmp_path / "table.csv").write_text("batch_size,lr,test_accuracy\n1,0.01,0.935\n100,1.0,\nfull,0.5,0.5\n")

    def ours(where):
        ref = {"study": "s", "figure": "f", "report": 0.9, "ours": ["table.csv", where, "test_accuracy"],
               "dataset": "generated"}
        return build_rows([ref], {}, tmp_path)[0]["ours"]

    assert ours({"batch_size": 1, "lr": 0.01}) == "93.5%"
    assert ours({"batch_size": 100, "lr": 1}) == "null (diverged)"     # 1 matches the cell "1.0"
    assert ours({"batch_size": "full"}) == "50.0%"
    assert ours({"batch_size": 7}).startswith("not run")
    with pytest.raises(DataError, match=r"table.csv: 3 rows match \{\}"):
        ours({})


def test_every_reference_row_finds_its_figure_in_the_default_run():
    """The committed outputs are the default pipeline's, which runs every study: no references.yaml
    row may come out "not run" there (two MNIST rows once did, looking up a key no stage wrote)."""
    import yaml

    data_params = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]
    rows = build_rows(load_references(ROOT / "references.yaml"), data_params, ROOT)
    unresolved = [f"{row['study']}: {row['figure']}" for row in rows if row["ours"].startswith("not run")]
    assert not unresolved, "\n".join(unresolved)
