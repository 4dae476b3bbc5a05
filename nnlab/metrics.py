"""Plot records for DVC's templates: ROC and precision-recall rows, confusion pairs (scores: nnlab.results)."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


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


#: What a diverged model "predicts" in its confusion records: a column of its own, the marked gap.
NO_PREDICTION = "none: diverged"


def confusion_records(y_true: Iterable, y_pred: Iterable | None, class_names: Sequence[str] | None = None) -> list[dict]:
    """Rows for the confusion templates: ``[{"actual": .., "predicted": ..}]``; without predictions (a
    diverged model) every row's ``predicted`` is :data:`NO_PREDICTION`, so the matrix is still drawn."""
    def name(v):
        return class_names[int(v)] if class_names is not None else str(v)

    if y_pred is None:
        return [{"actual": name(a), "predicted": NO_PREDICTION} for a in y_true]
    return [{"actual": name(a), "predicted": name(p)} for a, p in zip(y_true, y_pred)]

