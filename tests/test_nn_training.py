"""Sequential: SGD step counts, shuffling, learning, symmetry of an all-zero start, divergence."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import make_moons

from nnlab.io import to_jsonable
from nnlab.models.mlp import Classifier, best_test_accuracy, load_model, mlp, save_model
from nnlab.nn import MSE, CrossEntropy, Linear, ReLU, Sequential, Tanh
from nnlab.nn.layers import Layer


class Recorder(Layer):
    """Identity layer that keeps the inputs of every forward pass followed by a backward (training batches)."""

    def __init__(self):
        self.batches: list[np.ndarray] = []

    def forward(self, x):
        self._x = x
        return x

    def backward(self, grad_out):
        self.batches.append(self._x)
        return grad_out


@pytest.fixture
def moons():
    X, y = make_moons(n_samples=200, noise=0.1, random_state=0)
    return X, y


def recorded_model(rng) -> tuple[Sequential, Recorder]:
    recorder = Recorder()
    return Sequential([recorder, Linear(2, 2, rng=rng)]), recorder


@pytest.mark.parametrize("batch_size, expected_sizes", [
    (None, [10] * 7),
    (1, [1] * 7),
    (3, [3, 3, 3, 1, 3, 3, 3]),
])
def test_one_update_per_step_with_the_right_batch_size(batch_size, expected_sizes):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 2)), rng.integers(0, 2, size=10)
    model, recorder = recorded_model(rng)
    result = model.train(X, y, CrossEntropy(), lr=0.1, steps=7, batch_size=batch_size, eval_every=3, rng=rng)
    assert [len(batch) for batch in recorder.batches] == expected_sizes
    assert result.trained == 7 and result.unit == "step" and not result.diverged
    assert [row["step"] for row in result.history] == [0, 3, 6, 7]


def test_an_epoch_visits_every_sample_once_in_shuffled_order():
    rng = np.random.default_rng(0)
    X = np.arange(20, dtype=float).reshape(10, 2)
    y = np.zeros(10, dtype=int)
    model, recorder = recorded_model(rng)
    result = model.train(X, y, CrossEntropy(), lr=0.0, steps=8, batch_size=3, eval_every=4, rng=rng)
    first, second = (np.concatenate(recorder.batches[k:k + 4])[:, 0] for k in (0, 4))
    assert sorted(first) == sorted(second) == list(X[:, 0])
    assert list(first) != list(X[:, 0]) and list(first) != list(second)
    assert [row["epoch"] for row in result.history] == [0, 1, 2]


@pytest.mark.parametrize("batch_size", [None, 1, 16])
def test_training_reduces_the_loss(moons, batch_size):
    X, y = moons
    rng = np.random.default_rng(1)
    model = mlp([2, 16, 2], rng=rng)
    result = model.train(X, y, CrossEntropy(), lr=0.1, steps=300, batch_size=batch_size, eval_every=100, rng=rng,
                         X_test=X, y_test=y)
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < 0.6 * first["train_loss"]
    assert last["train_accuracy"] > 0.85


def test_same_seed_same_history(moons):
    X, y = moons
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(3)
        runs.append(mlp([2, 8, 2], rng=rng).train(X, y, CrossEntropy(), lr=0.1, steps=50, batch_size=8,
                                                  eval_every=10, rng=rng).history)
    assert runs[0] == runs[1]


def hidden_weights_after_training(init: str, moons) -> np.ndarray:
    X, y = moons
    rng = np.random.default_rng(0)
    # Sigmoid hidden units: at 0 they output 0.5, so an all-zero net still gets gradients (ReLU or tanh would not).
    model = mlp([2, 6, 2], rng=rng, init=init, activation="sigmoid")
    model.train(X, y, CrossEntropy(), lr=0.5, steps=200, batch_size=20, eval_every=200, rng=rng)
    return model.layers[0].W


def test_all_zero_start_keeps_hidden_units_identical(moons):
    """Symmetry: from zeros every hidden unit gets the same gradient, so the units move but never differ."""
    zero_start = hidden_weights_after_training("zeros", moons)
    random_start = hidden_weights_after_training("he", moons)
    assert not np.allclose(zero_start, 0)
    assert np.allclose(zero_start, zero_start[:, :1])
    assert not np.allclose(random_start, random_start[:, :1])


def test_divergence_stops_and_reports_nulls():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3)) * 10
    y = rng.normal(size=(50, 1)) * 100
    model = Sequential([Linear(3, 8, rng=rng), Tanh(), Linear(8, 1, rng=rng)])
    result = model.train(X, y, MSE(), lr=1e3, steps=500, batch_size=None, eval_every=1, X_test=X, y_test=y)
    assert result.diverged and result.trained <= result.diverged_at < 500
    assert all(np.isfinite(row["train_loss"]) for row in result.history)
    final = to_jsonable(result.final())
    assert set(final.values()) == {None} and math.isnan(best_test_accuracy(result))


def test_divergence_is_dated_at_the_update_that_showed_it_without_warnings():
    import warnings

    from nnlab.results import SCORE_COLUMNS

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)) * 10, rng.normal(size=(50, 1)) * 100

    def run(eval_every, **kwargs):
        model = Sequential([Linear(3, 8, rng=np.random.default_rng(1)), Tanh(), Linear(8, 1, rng=rng)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # overflow shows as a non-finite loss, never as a warning
            return model.train(X, y, MSE(), lr=1e3, steps=500, eval_every=eval_every, **kwargs)

    scored = run(1, X_test=X, y_test=y)   # the score after an update sees it
    assert scored.diverged_at == scored.trained == len(scored.history) > 0
    assert set(scored.history[0]) == {"step", "epoch", *SCORE_COLUMNS}
    assert all(math.isfinite(row["test_accuracy"]) for row in scored.history)
    unscored = run(1000)   # only the next update's loss sees it
    assert unscored.diverged_at == unscored.trained + 1 and len(unscored.history) == 1
    assert math.isnan(unscored.history[0]["test_loss"]) and math.isnan(unscored.history[0]["test_accuracy"])
    classes = np.eye(3)[rng.integers(0, 3, 50)]
    softmax = Sequential([Linear(3, 16, rng=np.random.default_rng(1)), ReLU(), Linear(16, 3, rng=rng)])
    model = Sequential([Linear(3, 1, rng=rng)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # inf - inf is NaN, also without a warning
        # A softmax classifier's logits overflow to inf, and its max-shift then computes inf - inf.
        assert softmax.train(X, classes, CrossEntropy(), lr=1e6, steps=200, X_test=X, y_test=classes).diverged
        at_start = model.train(np.full_like(X, np.inf), y, MSE(), lr=1.0, steps=5)
    assert (at_start.diverged_at, at_start.trained, at_start.history) == (0, 0, [])


def test_training_defaults_score_every_update_and_need_a_generator_for_mini_batches():
    from nnlab.nn.sequential import steps_per_epoch

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 1))
    model = Sequential([Linear(2, 1, rng=rng)])
    assert len(model.train(X, y, MSE(), lr=0.01, steps=3).history) == 4
    assert len(model.train(X, y, MSE(), lr=0.01, steps=1, batch_size=10).history) == 2   # all rows: full batch
    with pytest.raises(ValueError, match="^mini-batch training needs a numpy Generator to shuffle with$"):
        model.train(X, y, MSE(), lr=0.01, steps=1, batch_size=9)
    assert (steps_per_epoch(10, None), steps_per_epoch(10, 3), steps_per_epoch(9, 3)) == (1, 4, 3)


@pytest.mark.parametrize("architecture", [
    {"sizes": [2, 8, 2], "activation": "relu", "output": None, "loss": "cross_entropy"},
    {"sizes": [2, 6, 5, 1], "activation": "tanh", "output": "sigmoid", "loss": "binary_cross_entropy"},
])
def test_saved_classifier_predicts_the_same_bit_for_bit(tmp_path, moons, architecture):
    X, y = moons
    rng = np.random.default_rng(0)
    classifier = Classifier(architecture, rng=rng)
    result = classifier.net.train(X, y, classifier.loss_function, lr=0.1, steps=20, batch_size=16, rng=rng)
    save_model(tmp_path, classifier, result, classes=[0, 1], source="generated")
    loaded, spec = load_model(tmp_path, "mlp_moons")
    assert spec["architecture"] == architecture and spec["run"] == result.run_record()
    assert loaded.class1_probability(X).tobytes() == classifier.class1_probability(X).tobytes()
    assert np.array_equal(loaded.predict(X), classifier.predict(X))
    assert loaded.loss(X, y) == classifier.loss(X, y)
