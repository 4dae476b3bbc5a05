"""One metrics schema for every model and study stage.

Metrics files hold headline figures only, the few a reader compares across
experiments (every leaf is a column of ``dvc exp show``). A model's
``metrics/<model>.json``::

    {"source": "synthetic",                       # where the data came from
     "train": {"accuracy": ..},
     "test": {"accuracy": .., "f1" or "macro_f1": ..},
     "diverged": false}

Its full evaluation, ``plots/<model>/evaluation.json``::

    {"source": .., "train": {"accuracy": .., "loss": ..},
     "test": {"accuracy": .., "loss": .., "f1" or "macro_f1": .., "recall": {class: ..}},
     "diverged": false, "diverged_at": null,      # where the loss stopped being finite, in `unit`
     "trained": 10, "unit": "epoch"}              # how long it trained: epochs or steps

A diverged run keeps every key, with ``null`` scores. A study writes one row
per run to ``plots/<study>/table.csv`` and only :func:`study_summary` to its
metrics file (``source``, ``best.run``, ``best.test_accuracy``, ``diverged_runs``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

UNITS = ("epoch", "step")
SOURCES = ("synthetic", "generated", "embedded", "idx", "download", "aclimdb", "csv", "folder")
#: The scores of a history row, beside its ``epoch`` or ``step``.
SCORE_COLUMNS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
RUN_KEYS = ("diverged", "diverged_at", "trained", "unit")
EVALUATION_KEYS = frozenset({"source", "train", "test", *RUN_KEYS})
TRAIN_SCORES = frozenset({"accuracy", "loss"})
#: Binary classifiers report the positive class's F1 (as the reports did); others the macro F1.
TEST_SCORES = {"binary": frozenset({"accuracy", "loss", "f1", "recall"}),
               "multiclass": frozenset({"accuracy", "loss", "macro_f1", "recall"})}
HEADLINE_KEYS = frozenset({"source", "train", "test", "diverged"})
HEADLINE_TRAIN = frozenset({"accuracy"})
HEADLINE_TEST = (frozenset({"accuracy", "f1"}), frozenset({"accuracy", "macro_f1"}))


@dataclass
class TrainResult:
    """What a training loop returns: its history and how far it got.

    ``trained`` counts completed epochs or steps (``unit``); ``diverged_at`` is the
    epoch or step at which a loss first stopped being finite (training stopped there).
    """

    unit: str
    history: list[dict] = field(default_factory=list)
    trained: int = 0
    diverged_at: int | None = None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def final(self) -> dict:
        """The last history row's scores; NaN (null in JSON) for a run that diverged or never scored."""
        if self.diverged or not self.history:
            return {key: math.nan for key in SCORE_COLUMNS}
        return {key: self.history[-1][key] for key in SCORE_COLUMNS}

    def run_record(self) -> dict:
        return {"diverged": self.diverged, "diverged_at": self.diverged_at, "trained": self.trained,
                "unit": self.unit}

    @classmethod
    def from_run_record(cls, record: dict, history: list[dict]) -> "TrainResult":
        """The result that :meth:`run_record` describes (as saved beside a model), with its history."""
        return cls(record["unit"], history, record["trained"], record["diverged_at"])


def per_class_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Every class's F1 and recall, 0 where undefined (scikit-learn's ``zero_division=0``).

    Read off the confusion matrix with numpy: a stage that only scores predictions would
    otherwise import scikit-learn for it, about a second of every start (tests/test_results.py
    checks these against ``sklearn.metrics``)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    confusion = np.bincount(y_true * n_classes + y_pred, minlength=n_classes ** 2).reshape(n_classes, n_classes)
    hits, actual, predicted = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(invalid="ignore"):   # hits <= actual, predicted: a zero count only ever gives 0 / 0
        recall = np.where(actual > 0, hits / actual, 0.0)
        f1 = np.where(actual + predicted > 0, 2 * hits / (actual + predicted), 0.0)   # 2PR/(P+R) in counts
    return f1, recall


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    return float(per_class_scores(y_true, y_pred, n_classes)[0].mean())


def classifier_scores(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], loss: float,
                      *, train: bool = False) -> dict:
    """A split's scores in the schema: accuracy and loss, and on test F1 (macro F1 beyond two
    classes) and every class's recall."""
    scores = {"accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))), "loss": float(loss)}
    if train:
        return scores
    f1, recalls = per_class_scores(y_true, y_pred, len(class_names))
    if len(class_names) == 2:
        scores["f1"] = float(f1[1])
    else:
        scores["macro_f1"] = float(f1.mean())
    scores["recall"] = {name: float(value) for name, value in zip(class_names, recalls)}
    return scores


def diverged_scores(class_names: Sequence[str], *, train: bool = False) -> dict:
    """The keys of :func:`classifier_scores` with null values, for a run that has no usable model."""
    scores = {"accuracy": None, "loss": None}
    if not train:
        scores["f1" if len(class_names) == 2 else "macro_f1"] = None
        scores["recall"] = {name: None for name in class_names}
    return scores


def model_evaluation(source: str, run: dict, train: dict, test: dict) -> dict:
    """A model's full evaluation record; ``run`` is :meth:`TrainResult.run_record` (as saved with the model)."""
    record = {"source": source, "train": train, "test": test, **{key: run[key] for key in RUN_KEYS}}
    check_model_evaluation(record)
    return record


def model_metrics(evaluation: dict) -> dict:
    """The headline of a :func:`model_evaluation` record: what ``metrics/<model>.json`` holds."""
    test = evaluation["test"]
    f1 = "f1" if "f1" in test else "macro_f1"
    record = {"source": evaluation["source"], "train": {"accuracy": evaluation["train"]["accuracy"]},
              "test": {"accuracy": test["accuracy"], f1: test[f1]}, "diverged": evaluation["diverged"]}
    check_model_metrics(record)
    return record


def write_evaluation(out, model: str, evaluation: dict, confusion: list[dict]) -> None:
    """An evaluate stage's three records of ``model`` into ``out`` (a :class:`nnlab.io.StageOutputs`):
    the headline ``metrics/<model>.json``, ``plots/<model>/evaluation.json`` and the test split's
    ``plots/<model>/confusion.json`` (:func:`nnlab.metrics.confusion_records`)."""
    out.json(f"metrics/{model}.json", model_metrics(evaluation))
    out.json(f"plots/{model}/evaluation.json", evaluation)
    out.json(f"plots/{model}/confusion.json", confusion)


def _check_source(record: dict, problems: list[str]) -> None:
    if record.get("source") not in SOURCES:
        problems.append(f"source {record.get('source')!r} is not one of {', '.join(SOURCES)}")


def check_model_evaluation(record: dict) -> None:
    """Raise ``ValueError`` naming what a model's evaluation record lacks or has extra."""
    problems = []
    if set(record) != EVALUATION_KEYS:
        problems.append(f"top-level keys {sorted(record)} are not {sorted(EVALUATION_KEYS)}")
    _check_source(record, problems)
    if record.get("unit") not in UNITS:
        problems.append(f"unit {record.get('unit')!r} is not one of {', '.join(UNITS)}")
    if set(record.get("train") or {}) != TRAIN_SCORES:
        problems.append(f"train scores {sorted(record.get('train') or {})} are not {sorted(TRAIN_SCORES)}")
    if set(record.get("test") or {}) not in TEST_SCORES.values():
        problems.append(f"test scores {sorted(record.get('test') or {})} are none of "
                        f"{[sorted(keys) for keys in TEST_SCORES.values()]}")
    if problems:
        raise ValueError("; ".join(problems))


def check_model_metrics(record: dict) -> None:
    """Raise ``ValueError`` naming what a model's headline metrics record lacks or has extra."""
    problems = []
    if set(record) != HEADLINE_KEYS:
        problems.append(f"top-level keys {sorted(record)} are not {sorted(HEADLINE_KEYS)}")
    _check_source(record, problems)
    if set(record.get("train") or {}) != HEADLINE_TRAIN:
        problems.append(f"train scores {sorted(record.get('train') or {})} are not {sorted(HEADLINE_TRAIN)}")
    if set(record.get("test") or {}) not in HEADLINE_TEST:
        problems.append(f"test scores {sorted(record.get('test') or {})} are none of "
                        f"{[sorted(keys) for keys in HEADLINE_TEST]}")
    if not isinstance(record.get("diverged"), bool):
        problems.append(f"diverged {record.get('diverged')!r} is not true or false")
    if problems:
        raise ValueError("; ".join(problems))


def study_summary(table: Sequence[dict], run_column: str, *, source: str,
                  accuracy_column: str = "test_accuracy") -> dict:
    """A study's metrics: the data ``source`` (as a model's metrics name it), its best run by
    ``accuracy_column`` and how many runs diverged.

    ``table`` is the study's ``plots/<study>/table.csv`` rows; a diverged run's accuracy is NaN or None.
    """
    scored = [row for row in table if row[accuracy_column] is not None and math.isfinite(row[accuracy_column])]
    best = max(scored, key=lambda row: row[accuracy_column], default=None)
    return {"source": source, "best": {"run": None if best is None else str(best[run_column]),
                     "test_accuracy": None if best is None else best[accuracy_column]},
            "diverged_runs": sum(bool(row.get("diverged")) for row in table)}


def long_history(histories: Mapping[str, Sequence[dict]], diverged_at: Mapping[str, int | None], x: str,
                 columns: Sequence[str]) -> list[dict]:
    """A study's history in long form, the shape a DVC plot draws whatever runs a study has: a row per
    run and ``x`` (``run``, ``x``, ``columns``, ``status`` "trained"), and for a run that diverged one
    more row at ``diverged_at`` with empty scores and ``status`` "diverged", which the plot marks."""
    rows = []
    for run, history in histories.items():
        rows += [{"run": run, x: row[x], **{column: row[column] for column in columns}, "status": "trained"}
                 for row in history]
        if diverged_at.get(run) is not None:
            rows.append({"run": run, x: diverged_at[run], **dict.fromkeys(columns), "status": "diverged"})
    return rows
