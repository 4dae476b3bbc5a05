"""Classification metrics and the record shapes DVC's plot templates take."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, precision, recall and F1 for labels in {0, 1} (positive = 1)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="binary", pos_label=1, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def multiclass_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class recall and the confusion matrix (rows = actual)."""
    from sklearn.metrics import confusion_matrix, f1_score, recall_score

    labels = list(range(len(class_names)))
    recalls = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "recall": {name: float(r) for name, r in zip(class_names, recalls)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def curve_rows(y_true: np.ndarray, scores: np.ndarray | None) -> tuple[list[dict], list[dict]]:
    """A binary classifier's ROC curve (``fpr``, ``tpr``) and precision-recall curve, as plot rows
    (one row of nulls without scores: a diverged run)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    if scores is None:
        return [{"fpr": None, "tpr": None}], [{"recall": None, "precision": None}]
    fpr, tpr, _ = roc_curve(y_true, scores)
    precision, recall, _ = precision_recall_curve(y_true, scores, drop_intermediate=True)
    return ([{"fpr": f, "tpr": t} for f, t in zip(fpr, tpr)],
            [{"recall": r, "precision": p} for r, p in zip(recall, precision)])


def confusion_records(y_true: Iterable, y_pred: Iterable, class_names: Sequence[str] | None = None) -> list[dict]:
    """Rows for DVC's ``confusion`` template: ``[{"actual": .., "predicted": ..}]``."""
    def name(v):
        return class_names[int(v)] if class_names is not None else str(v)

    return [{"actual": name(a), "predicted": name(p)} for a, p in zip(y_true, y_pred)]

