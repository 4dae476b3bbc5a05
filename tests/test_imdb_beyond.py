"""Beyond report 000: Adam and weight decay on the sentiment classifier, the epoch chosen on a
validation part of the training split (stage imdb_tuned), and the LogisticRegression reference
(stage imdb_logreg). On tiny synthetic data, in this process."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from nnlab.datasets import imdb
from nnlab.errors import DataError
from nnlab.models import sentiment, sentiment_linear
from nnlab.results import check_model_evaluation, check_model_metrics, model_metrics
from stages.imdb_tuned import chosen_epoch


def separable_reviews(n: int, seed: int):
    """Sparse TF-IDF-like rows whose label is which of two word groups the row uses more."""
    X = sp.random(n, 60, density=0.1, format="csr", random_state=seed, dtype=np.float32)
    y = (np.asarray(X[:, :30].sum(axis=1)).ravel() > np.asarray(X[:, 30:].sum(axis=1)).ravel()).astype(np.int64)
    return X, y


def test_dense_gradient_first_layer_is_the_sparse_one_densified():
    rows = sentiment.SparseRows(*separable_reviews(12, seed=0))
    batch, _ = rows[np.arange(12)]
    gradients = []
    for sparse_gradient in (True, False):
        torch.manual_seed(3)
        layer = sentiment.SparseLinear(60, 4, sparse_gradient=sparse_gradient)
        layer(batch).sum().backward()
        assert layer.weight.grad.is_sparse == sparse_gradient
        gradients.append(layer.weight.grad.to_dense() if sparse_gradient else layer.weight.grad)
    torch.testing.assert_close(gradients[0], gradients[1])


@pytest.mark.parametrize("optimizer, weight_decay", [("adam", 0.0), ("adam", 1e-3), ("sgd", 1e-3)])
def test_adam_and_weight_decay_learn_and_repeat_bit_for_bit(optimizer, weight_decay):
    X, y = separable_reviews(300, seed=1)
    config = sentiment.ClassifierConfig(optimizer=optimizer, weight_decay=weight_decay, epochs=10, batch_size=16,
                                        lr=0.01 if optimizer == "adam" else 0.5)
    runs = [sentiment.train_classifier(X[:200], y[:200], X[200:], y[200:], config, seed=0, device="cpu",
                                       log=lambda line: None) for _ in range(2)]
    history = runs[0].result.history
    assert history == runs[1].result.history
    assert history[-1]["train_loss"] < history[0]["train_loss"] and history[-1]["test_accuracy"] > 0.7
    assert {"train_accuracy", "test_accuracy"} <= set(history[0])


def test_unknown_optimizer_is_refused():
    model = sentiment.SentimentNet(5, (4, 2), "relu", "default")
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        sentiment.make_optimizer(model, sentiment.ClassifierConfig(optimizer="rmsprop"))


def test_the_best_validation_epoch_is_chosen_the_earliest_on_a_tie():
    history = [{"epoch": epoch, "validation_accuracy": accuracy} for epoch, accuracy in
               enumerate([0.70, 0.85, 0.80, 0.85], start=1)]
    assert chosen_epoch(history, 4) == 2
    assert chosen_epoch([], 7) == 7   # diverged before its first epoch: the final run records its own fate


def test_validation_split_is_stratified_disjoint_and_seeded():
    labels = np.array([0] * 60 + [1] * 40)
    fit, validation = imdb.validation_split(labels, 0.25, seed=5)
    assert len(validation) == 25 and sorted([*fit, *validation]) == list(range(100))
    assert labels[validation].sum() == 10   # 40 % positive, as in the whole training split
    assert [a.tolist() for a in imdb.validation_split(labels, 0.25, seed=5)] == [fit.tolist(), validation.tolist()]
    assert len(imdb.validation_split(labels, 0.1, seed=5)[1]) == 10
    with pytest.raises(DataError, match="cannot hold out a validation part of 3 training reviews"):
        imdb.validation_split(np.array([0, 0, 1]), 0.5, seed=0)


def test_logistic_regression_reference_in_the_metrics_schema(tmp_path):
    X, y = separable_reviews(300, seed=2)
    model = sentiment_linear.fit(X[:200], y[:200], C=10.0, max_iter=200)
    evaluation, predicted = sentiment_linear.run_evaluation(model, "synthetic", X[:200], y[:200], X[200:], y[200:])
    check_model_evaluation(evaluation)
    check_model_metrics(model_metrics(evaluation))
    assert evaluation["test"]["accuracy"] > 0.8 and evaluation["unit"] == "step" and evaluation["trained"] >= 1
    assert evaluation["test"]["accuracy"] == pytest.approx(model.score(X[200:], y[200:]))
    np.testing.assert_array_equal(predicted, model.predict(X[200:]))
    sentiment_linear.save_model(tmp_path, model, source="synthetic")
    spec = json.loads((tmp_path / "spec.json").read_text())
    assert spec["kind"] == "imdb_logreg" and spec["params"]["C"] == 10.0
    with np.load(tmp_path / "weights.npz") as weights:
        np.testing.assert_array_equal(weights["coef"], model.coef_)
