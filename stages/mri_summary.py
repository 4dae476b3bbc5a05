"""Stage `mri_summary`: our MRI test figures beside report 001's.

Reads plots/mri_{simple_nn1,simple_nn2,cnn1,cnn_improved,nearest}/evaluation.json,
plots/mri_lr_study/table.csv, the report's figures in references.yaml and
data/mri/normalized/info.json (which data they were measured on). Writes
plots/mri_summary/table.csv (report accuracy, ours, macro-F1, recall of the
rarest class, diverged) and plots/mri_summary/comparison.png.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from nnlab import plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import mri
from nnlab.errors import DataError
from nnlab.io import StageOutputs
from nnlab.report import load_references, report_figure

#: The networks, and the nearest-neighbour lookup as the reference row beside them (stage mri_nearest).
MODELS = ("simple_nn1", "simple_nn2", "cnn1", "cnn_improved", "nearest")
STUDY_TABLE = "plots/mri_lr_study/table.csv"
RAREST_CLASS = "ModerateDemented"


def _read(path: Path, read):
    try:
        return read(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); run the MRI evaluate and study stages first") from None


def collect_runs() -> dict[str, tuple[dict, list]]:
    """``{row label: (scores, where references.yaml finds its test accuracy)}`` for the single models
    and every run of the lr study; scores in the study table's columns."""
    runs = {}
    for name in MODELS:
        evaluation = _read(Path(f"plots/mri_{name}/evaluation.json"), lambda path: json.loads(path.read_text()))
        test = evaluation["test"]
        scores = {"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
                  f"test_recall_{RAREST_CLASS}": test["recall"][RAREST_CLASS], "diverged": evaluation["diverged"]}
        runs[name] = scores, [f"metrics/mri_{name}.json", "test", "accuracy"]
    study = _read(Path(STUDY_TABLE), pd.read_csv)
    for row in study.astype(object).where(study.notna(), None).to_dict("records"):
        runs[f"{row['model']}@{row['run']}"] = row, [STUDY_TABLE, {"run": row["run"]}, "test_accuracy"]
    return runs


def summary_rows(runs: dict[str, tuple[dict, list]], data: str, references: list[dict]) -> list[dict]:
    columns = ("test_accuracy", "test_macro_f1", f"test_recall_{RAREST_CLASS}", "diverged")
    return [{"run": label, "data": data, "report_test_accuracy": report_figure(references, accuracy_path),
             **{column: scores[column] for column in columns}}
            for label, (scores, accuracy_path) in runs.items()]


def main(argv=None) -> None:
    stage_parser(__doc__).parse_args(argv)
    info = mri.read_info("data/mri/normalized")
    rows = summary_rows(collect_runs(), info["source"], load_references(Path("references.yaml")))
    # A figure on synthetic phantoms is never drawn beside the report's Kaggle figure.
    comparable = info["source"] != "synthetic"
    bars = {row["run"]: {f"ours ({info['source']})": "diverged" if row["diverged"] else row["test_accuracy"],
                         **({"report (Kaggle)": row["report_test_accuracy"] or "not reported"} if comparable else {})}
            for row in rows}
    title = (f"MRI test accuracy: ours on {info['description']} beside the report's" if comparable else
             f"MRI test accuracy on {info['description']}\n"
             "(not comparable with the report's Kaggle figures)")
    with StageOutputs() as out:
        out.csv("plots/mri_summary/table.csv", rows)
        fig = plotting.bar_chart(bars, title=title, ylabel="test accuracy", rotate_labels=True)
        out.figure("plots/mri_summary/comparison.png", fig)
    for row in rows:
        print(row)


if __name__ == "__main__":
    run(main)
