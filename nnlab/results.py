"""One metrics schema for every model, study and dataset stage.

A model's ``metrics/<model>.json``::

    {"source": "synthetic",                       # where the data came from
     "train": {"accuracy": .., "loss": ..},
     "test": {"accuracy": .., "loss": .., "f1" or "macro_f1": .., "recall": {class: ..}},
     "diverged": false, "diverged_at": null,      # where the loss stopped being finite, in `unit`
     "trained": 10, "unit": "epoch"}              # how long it trained: epochs or steps

A diverged run keeps every key, with ``null`` scores. A study's or a dataset's
metrics file holds ``source`` beside its own figures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

UNITS = ("epoch", "step")
SOURCES = ("synthetic", "generated", "embedded", "idx", "download", "aclimdb", "csv", "folder")
#: The scores of a history row, beside its ``epoch`` or ``step``.
SCORE_COLUMNS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
RUN_KEYS = ("diverged", "diverged_at", "trained", "unit")
MODEL_KEYS = frozenset({"source", "train", "test", *RUN_KEYS})
TRAIN_SCORES = frozenset({"accuracy", "loss"})
#: Binary classifiers report the positive class's F1 (as the reports did); others the macro F1.
TEST_SCORES = {"binary": frozenset({"accuracy", "loss", "f1", "recall"}),
               "multiclass": frozenset({"accuracy", "loss", "macro_f1", "recall"})}


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


def classifier_scores(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str], loss: float,
                      *, train: bool = False) -> dict:
    """A split's scores in the schema: accuracy and loss, and on test F1 (macro F1 beyond two
    classes) and every class's recall."""
    from sklearn.metrics import f1_score, recall_score

    labels = list(range(len(class_names)))
    scores = {"accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))), "loss": float(loss)}
    if train:
        return scores
    if len(class_names) == 2:
        scores["f1"] = float(f1_score(y_true, y_pred, labels=labels, pos_label=1, average="binary",
                                      zero_division=0))
    else:
        scores["macro_f1"] = float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    recalls = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    scores["recall"] = {name: float(value) for name, value in zip(class_names, recalls)}
    return scores


def diverged_scores(class_names: Sequence[str], *, train: bool = False) -> dict:
    """The keys of :func:`classifier_scores` with null values, for a run that has no usable model."""
    scores = {"accuracy": None, "loss": None}
    if not train:
        scores["f1" if len(class_names) == 2 else "macro_f1"] = None
        scores["recall"] = {name: None for name in class_names}
    return scores


def model_metrics(source: str, run: dict, train: dict, test: dict) -> dict:
    """A model's metrics record; ``run`` is :meth:`TrainResult.run_record` (as saved with the model)."""
    record = {"source": source, "train": train, "test": test, **{key: run[key] for key in RUN_KEYS}}
    check_model_metrics(record)
    return record


def check_model_metrics(record: dict) -> None:
    """Raise ``ValueError`` naming what a model's metrics record lacks or has extra."""
    problems = []
    if set(record) != MODEL_KEYS:
        problems.append(f"top-level keys {sorted(record)} are not {sorted(MODEL_KEYS)}")
    if record.get("source") not in SOURCES:
        problems.append(f"source {record.get('source')!r} is not one of {', '.join(SOURCES)}")
    if record.get("unit") not in UNITS:
        problems.append(f"unit {record.get('unit')!r} is not one of {', '.join(UNITS)}")
    if set(record.get("train") or {}) != TRAIN_SCORES:
        problems.append(f"train scores {sorted(record.get('train') or {})} are not {sorted(TRAIN_SCORES)}")
    if set(record.get("test") or {}) not in TEST_SCORES.values():
        problems.append(f"test scores {sorted(record.get('test') or {})} are none of "
                        f"{[sorted(keys) for keys in TEST_SCORES.values()]}")
    if problems:
        raise ValueError("; ".join(problems))
