"""nnlab.results scores predictions with numpy; they equal scikit-learn's, empty classes included. The
metrics schema's records and checks, a study's summary and long history, and nnlab.metrics' plot rows."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, recall_score

from nnlab import metrics, results
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


def test_scores_of_float_labels_and_of_an_empty_class_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # an empty class's 0 / 0 is a 0 score, not a warning
        f1, recall = results.per_class_scores(np.array([0.0, 0.0]), np.array([0.0, 1.0]), 3)
    assert f1.tolist() == [2 / 3, 0.0, 0.0] and recall.tolist() == [0.5, 0.0, 0.0]


def test_train_split_has_accuracy_and_loss_only():
    assert classifier_scores(np.array([0, 1]), np.array([0, 0]), ["a", "b"], 0.25, train=True) == \
        {"accuracy": 0.5, "loss": 0.25}


def test_a_run_reports_its_last_scores_and_how_it_ended():
    rows = [{**dict.fromkeys(SCORE_COLUMNS, score), "epoch": epoch} for epoch, score in ((1, 0.25), (2, 0.5), (3, 0.75))]
    run = TrainResult("epoch", rows, trained=2)
    assert run.final() == dict.fromkeys(SCORE_COLUMNS, 0.75)
    assert run.run_record() == {"diverged": False, "diverged_at": None, "trained": 2, "unit": "epoch"}
    assert all(math.isnan(value) for value in TrainResult("epoch", rows, trained=2, diverged_at=3).final().values())
    assert all(math.isnan(value) for value in TrainResult("step", []).final().values())
    again = TrainResult.from_run_record({"unit": "step", "trained": 5, "diverged_at": 4}, rows)
    assert (again.unit, again.history, again.trained, again.diverged_at, again.diverged) == ("step", rows, 5, 4, True)


def test_a_diverged_run_keeps_every_key_with_null_scores():
    assert results.diverged_scores(["a", "b"]) == {"accuracy": None, "loss": None, "f1": None,
                                                   "recall": {"a": None, "b": None}}
    assert results.diverged_scores(["a", "b", "c"])["macro_f1"] is None
    assert results.diverged_scores(["a", "b", "c"], train=True) == {"accuracy": None, "loss": None}


RUN = {"diverged": False, "diverged_at": None, "trained": 3, "unit": "epoch"}


def test_a_models_evaluation_and_its_headline():
    test = classifier_scores(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]), ["a", "b", "c"], 0.5)
    train = {"accuracy": 1.0, "loss": 0.25}
    evaluation = results.model_evaluation("idx", {**RUN, "extra": 1}, train, test)
    assert evaluation == {"source": "idx", "train": train, "test": test, **RUN}
    assert results.model_metrics(evaluation) == {"source": "idx", "train": {"accuracy": 1.0},
                                                 "test": {"accuracy": 0.75, "macro_f1": test["macro_f1"]},
                                                 "diverged": False}
    binary = results.model_evaluation("csv", RUN, train, classifier_scores(np.array([0, 1]), np.array([1, 1]),
                                                                           ["n", "p"], 0.5))
    assert results.model_metrics(binary)["test"] == {"accuracy": 0.5, "f1": pytest.approx(2 / 3)}


def test_the_schema_checks_name_each_problem():
    with pytest.raises(ValueError) as error:
        results.check_model_evaluation({"source": "web", "train": {"accuracy": 1}, "test": {"loss": 1},
                                        "unit": "hour"})
    assert str(error.value) == (
        "top-level keys ['source', 'test', 'train', 'unit'] are not ['diverged', 'diverged_at', 'source', "
        "'test', 'train', 'trained', 'unit']; source 'web' is not one of synthetic, generated, embedded, idx, "
        "download, aclimdb, csv, folder; unit 'hour' is not one of epoch, step; train scores ['accuracy'] are "
        "not ['accuracy', 'loss']; test scores ['loss'] are none of [['accuracy', 'f1', 'loss', 'recall'], "
        "['accuracy', 'loss', 'macro_f1', 'recall']]")
    with pytest.raises(ValueError) as error:
        results.check_model_metrics({"train": {"loss": 1}, "test": {"accuracy": 1}, "diverged": 0})
    assert str(error.value) == (
        "top-level keys ['diverged', 'test', 'train'] are not ['diverged', 'source', 'test', 'train']; "
        "source None is not one of synthetic, generated, embedded, idx, download, aclimdb, csv, folder; "
        "train scores ['loss'] are not ['accuracy']; test scores ['accuracy'] are none of [['accuracy', 'f1'], "
        "['accuracy', 'macro_f1']]; diverged 0 is not true or false")
    for step in ("step", "epoch"):
        results.check_model_evaluation({"source": "folder", "train": {"accuracy": 1, "loss": 1}, **RUN, "unit": step,
                                        "test": {"accuracy": 1, "loss": 1, "f1": 1, "recall": {}}})
    results.check_model_metrics({"source": "synthetic", "train": {"accuracy": 1}, "test": {"accuracy": 1, "f1": 1},
                                 "diverged": True})


def test_an_evaluation_is_written_as_three_records():
    class Outputs:
        def __init__(self):
            self.written = {}

        def json(self, path, record):
            self.written[path] = record

    out = Outputs()
    evaluation = results.model_evaluation("csv", RUN, {"accuracy": 1.0, "loss": 0.0},
                                          results.diverged_scores(["n", "p"]) | {"accuracy": 0.5})
    results.write_evaluation(out, "m", evaluation, [{"actual": "n", "predicted": "p"}])
    assert out.written == {"metrics/m.json": results.model_metrics(evaluation), "plots/m/evaluation.json": evaluation,
                           "plots/m/confusion.json": [{"actual": "n", "predicted": "p"}]}


def test_a_study_summary_picks_the_best_scored_run_and_counts_the_diverged():
    table = [{"lr": 0.1, "test_accuracy": 0.5, "diverged": False}, {"lr": 1, "test_accuracy": math.nan, "diverged": True},
             {"lr": 0.01, "test_accuracy": 0.75}, {"lr": 10, "test_accuracy": None, "diverged": True},
             {"lr": 0.5, "test_accuracy": 0.75, "diverged": False}]
    assert results.study_summary(table, "lr", source="idx") == {
        "source": "idx", "best": {"run": "0.01", "test_accuracy": 0.75}, "diverged_runs": 2}
    validated = [{**row, "validation_accuracy": 1 - index / 10} for index, row in enumerate(table)]
    assert results.study_summary(validated, "lr", source="idx", accuracy_column="validation_accuracy")["best"] == {
        "run": "0.1", "test_accuracy": 1.0}
    assert results.study_summary(table[1::2], "lr", source="csv") == {
        "source": "csv", "best": {"run": None, "test_accuracy": None}, "diverged_runs": 2}


def test_a_long_history_marks_where_a_run_diverged():
    histories = {"a": [{"epoch": 1, "loss": 0.5, "other": 9}, {"epoch": 2, "loss": 0.25}], "b": [{"epoch": 1, "loss": 2}]}
    assert results.long_history(histories, {"a": None, "b": 2}, "epoch", ["loss"]) == [
        {"run": "a", "epoch": 1, "loss": 0.5, "status": "trained"},
        {"run": "a", "epoch": 2, "loss": 0.25, "status": "trained"},
        {"run": "b", "epoch": 1, "loss": 2, "status": "trained"},
        {"run": "b", "epoch": 2, "loss": None, "status": "diverged"}]


def test_curve_rows_are_scikit_learns_curves_and_nulls_without_scores():
    from sklearn.metrics import precision_recall_curve, roc_curve

    y_true, scores = np.array([0, 0, 1, 1, 0, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.5, 0.9])
    roc, pr = metrics.curve_rows(y_true, scores)
    fpr, tpr, _ = roc_curve(y_true, scores)
    precision, recall, _ = precision_recall_curve(y_true, scores, drop_intermediate=True)
    assert roc == [{"fpr": f, "tpr": t} for f, t in zip(fpr, tpr)] and len(roc) > 2
    assert pr == [{"recall": r, "precision": p} for r, p in zip(recall, precision)]
    assert len(pr) < len(precision_recall_curve(y_true, scores)[0])   # the intermediate points are dropped
    assert metrics.curve_rows(y_true, None) == ([{"fpr": None, "tpr": None}], [{"recall": None, "precision": None}])


def test_confusion_records_name_the_classes_and_mark_a_diverged_model():
    assert metrics.confusion_records([0, 1], [1, 1], ["cat", "dog"]) == [
        {"actual": "cat", "predicted": "dog"}, {"actual": "dog", "predicted": "dog"}]
    assert metrics.confusion_records(np.array([2]), np.array([0])) == [{"actual": "2", "predicted": "0"}]
    assert metrics.confusion_records([1, 0], None, ["cat", "dog"]) == [
        {"actual": "dog", "predicted": metrics.NO_PREDICTION}, {"actual": "cat", "predicted": metrics.NO_PREDICTION}]
