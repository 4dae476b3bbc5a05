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
           "ours": ["metrics/m.json", "test", "accuracy"], "dataset": dataset, "comparable": True}
    return build_rows([ref], {"data": {dataset: {"source": source}}}, tmp_path)


def test_real_data_gets_a_difference(tmp_path):
    write_metrics(tmp_path, 0.9)
    row = rows_for(tmp_path, "imdb", "aclimdb")[0]
    assert row["ours"] == "90.0%" and row["difference"] == "+0.8 pts"
    assert "real IMDB" in row["data"]


def test_synthetic_data_is_never_comparable(tmp_path):
    write_metrics(tmp_path, 0.9)
    row = rows_for(tmp_path, "imdb", "synthetic")[0]
    assert row["comparable"] == "no: synthetic data" and row["difference"] == "–"
    assert "SYNTHETIC" in row["data"] and "SYNTHETIC" in render([row])


def test_the_embedded_subset_is_real_but_not_compared_with_the_reports_50k(tmp_path):
    write_metrics(tmp_path, 0.9)
    row = rows_for(tmp_path, "imdb", "embedded")[0]
    assert row["data"] == "real IMDB reviews, 4,000-review subset (aclImdb train split)"
    assert row["report"] == "89.2%" and row["difference"] == "–"
    assert row["comparable"].startswith("no: another data size")


def test_diverged_value_is_shown_as_null(tmp_path):
    write_metrics(tmp_path, None)
    row = rows_for(tmp_path, "mnist", "embedded")[0]
    assert row["ours"] == "null (diverged)" and row["difference"] == "–"


def test_a_run_left_out_of_the_grid_is_marked_not_run(tmp_path):
    write_metrics(tmp_path, 0.5)
    ref = {"study": "s", "figure": "f", "report": 1.0, "ours": ["metrics/m.json", "test", "f1"],
           "dataset": "generated", "comparable": True}
    row = build_rows([ref], {}, tmp_path)[0]
    assert row["ours"].startswith("not run") and row["difference"] == "–"


def test_missing_metrics_file_is_named(tmp_path):
    ref = {"study": "s", "figure": "f", "report": 1.0, "ours": ["metrics/none.json", "test"],
           "dataset": "generated", "comparable": True}
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
               "dataset": "generated", "comparable": True}
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

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    rows = build_rows(load_references(ROOT / "references.yaml"), params, ROOT)
    unresolved = [f"{row['study']}: {row['figure']}" for row in rows if row["ours"].startswith("not run")]
    assert not unresolved, "\n".join(unresolved)


def model_ref(**extra):
    return {"study": "s", "figure": "test accuracy", "report": 0.8, "ours": ["metrics/m.json", "test", "accuracy"],
            "dataset": "generated", "comparable": True,
            "settings": {"batch": "m.batch_size", "lr": ["m.lr", "train.lr"]},
            "report_settings": {"batch": 100, "lr": 0.01}, **extra}


def test_row_settings_are_the_params_the_run_used(tmp_path):
    """The label comes from params (a model's null lr falls back to train.lr), not from the study text."""
    write_metrics(tmp_path, 0.9)
    params = {"train": {"lr": 0.01}, "m": {"batch_size": 100, "lr": None}}
    row = build_rows([model_ref()], params, tmp_path)[0]
    assert row["settings"] == "batch 100, lr 0.01"
    assert row["comparable"] == "yes" and row["difference"] == "+10.0 pts"

    params["m"]["lr"] = 0.1   # an experiment's -S m.lr=0.1: the label follows, and the report's lr is not ours
    row = build_rows([model_ref()], params, tmp_path)[0]
    assert row["settings"] == "batch 100, lr 0.1"
    assert row["comparable"] == "no: other settings: lr 0.1 (report: 0.01)" and row["difference"] == "–"


def test_a_protocol_note_makes_a_row_not_comparable(tmp_path):
    write_metrics(tmp_path, 0.9)
    params = {"train": {"lr": 0.01}, "m": {"batch_size": 100, "lr": None}}
    row = build_rows([model_ref(comparable="another protocol")], params, tmp_path)[0]
    assert row["comparable"] == "no: another protocol" and row["difference"] == "–"
    assert "| no: another protocol | – |" in render([row])


def test_a_table_row_setting_comes_from_its_cells(tmp_path):
    """The N' study clamps 10000 to the 4,000 digits there are: the row says so and gives no difference."""
    (tmp_path / "t.csv").write_text("requested_size,used_size,test_accuracy\n100,100,0.7\n10000,4000,0.8\n")

    def row(size):
        ref = {"study": "s", "figure": "f", "report": 0.79, "dataset": "generated", "comparable": True,
               "ours": ["t.csv", {"requested_size": size}, "test_accuracy"],
               "settings": {"N' trained": {"column": "used_size"}}, "report_settings": {"N' trained": size}}
        return build_rows([ref], {}, tmp_path)[0]

    assert row(100)["settings"] == "N' trained 100" and row(100)["comparable"] == "yes"
    clamped = row(10000)
    assert clamped["settings"] == "N' trained 4000" and clamped["difference"] == "–"
    assert clamped["comparable"] == "no: other settings: N' trained 4000 (report: 10000)"


def test_the_report_stage_depends_on_every_setting_it_prints():
    """A settings key missing from the report stage's params would leave RESULTS.md stale after -S."""
    import yaml

    named = {"data.mnist.source", "data.imdb.source", "data.mri.source"}
    for ref in load_references(ROOT / "references.yaml"):
        for spec in (ref.get("settings") or {}).values():
            if not isinstance(spec, dict):
                named.update(spec if isinstance(spec, list) else [spec])
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]["params"]
    assert named == set(declared)


def test_reports_of_other_protocols_are_not_comparable_by_default():
    """The figures docs/ calls not comparable get no difference in the committed RESULTS.md."""
    text = (ROOT / "RESULTS.md").read_text()
    for study in ("003 linear classifier in PyTorch", "002 §2 separation, variance 50"):
        line = next(line for line in text.splitlines() if line.startswith(f"| {study} |"))
        assert line.endswith("| –|") or line.rstrip().endswith("| – |"), line
        assert "| no: " in line, line
    clamped = next(line for line in text.splitlines() if line.startswith("| 003 N' = 10000 |"))
    assert "N' trained 4000" in clamped and "| no: other settings" in clamped, clamped
