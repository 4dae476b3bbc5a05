"""nnlab.results scores predictions with numpy; they equal scikit-learn's, empty classes included."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, recall_score

from nnlab.results import SCORE_COLUMNS, TrainResult, classifier_scores, macro_f1

# A handful of float divisions and one mean of at most four classes: a few units in the last place.
REL = 8 * np.finfo(np.float64).eps


@st.composite
def predictions(draw):
    n_classes = draw(st.integers(2, 4))
    labels = st.lists(st.integers(0, n_classes - 1), min_size=1, max_size=40)
    y_true = draw(labels)
    y_pred = draw(st.lists(st.integers(0, n_classes - 1), min_size=len(y_true), max_size=len(y_true)))
    return np.array(y_true), np.array(y_pred), n_classes


@settings(max_examples=100, deadline=None)
@given(predictions())
def test_scores_equal_sklearn(case):
    y_true, y_pred, n_classes = case
    labels = list(range(n_classes))
    names = [f"class{k}" for k in labels]
    scores = classifier_scores(y_true, y_pred, names, loss=0.5)
    recalls = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    assert scores["recall"] == pytest.approx(dict(zip(names, recalls)), rel=REL, abs=0)
    macro = f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    assert macro_f1(y_true, y_pred, n_classes) == pytest.approx(macro, rel=REL, abs=0)
    if n_classes == 2:
        assert scores["f1"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, pos_label=1,
                                                      average="binary", zero_division=0), rel=REL, abs=0)
    else:
        assert scores["macro_f1"] == pytest.approx(macro, rel=REL, abs=0)
    assert scores["accuracy"] == np.mean(y_true == y_pred)


def test_train_split_has_accuracy_and_loss_only():
    assert classifier_scores(np.array([0, 1]), np.array([0, 0]), ["a", "b"], 0.25, train=True) == \
        {"accuracy": 0.5, "loss": 0.25}


def test_a_run_reports_its_last_scores_and_how_it_ended():
    rows = [{**dict.fromkeys(SCORE_COLUMNS, 0.25), "epoch": 1}, {**dict.fromkeys(SCORE_COLUMNS, 0.75), "epoch": 2}]
    run = TrainResult("epoch", rows, trained=2)
    assert run.final() == dict.fromkeys(SCORE_COLUMNS, 0.75)
    assert run.run_record() == {"diverged": False, "diverged_at": None, "trained": 2, "unit": "epoch"}
    assert all(math.isnan(value) for value in TrainResult("epoch", rows, trained=2, diverged_at=3).final().values())
