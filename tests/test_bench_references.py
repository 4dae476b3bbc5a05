"""The plain references of bench/ compute what our loops compute, so `make bench` compares equal work.

Tiny data only, no timing.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from bench import references
from nnlab.datasets.synthetic import circles, gaussians, moons
from test_mri import standardized_bound
from test_mnist import flippable_images, images_apart, loss_tolerance, trajectory_tolerance
from tolerances import assert_within, near_ties, softmax_mlp_tolerances, sum_tolerance


def linear_layers(model) -> list:
    return [layer for layer in model.layers if hasattr(layer, "W")]


@pytest.mark.numerics
def test_mlp_reference_matches_sequential():
    """Both float64; compared one step at a time from the same weights, so no difference can grow.

    Each step's weights differ by at most lr times the gradient bound of
    :func:`softmax_mlp_tolerances` plus the update's own rounding; the scores
    at those weights within its loss bound and near ties.
    """
    from nnlab.models.mlp import mlp
    from nnlab.nn import CrossEntropy

    data = moons(120, 0.2, 0.25, 0)
    model = mlp([2, 8, 2], rng=np.random.default_rng(0), init="he")
    initial = [(layer.W.copy(), layer.b.copy()) for layer in linear_layers(model)]
    result = model.train(data.X_train, data.y_train, CrossEntropy(), lr=0.5, steps=25, eval_every=5,
                         X_test=data.X_test, y_test=data.y_test)
    _, history = references.mlp_reference(data.X_train, data.y_train, data.X_test, data.y_test, initial,
                                          lr=0.5, steps=25, eval_every=5)
    assert [row["step"] for row in result.history] == [row["step"] for row in history]

    model = mlp([2, 8, 2], rng=np.random.default_rng(0), init="he")
    one_hot = {split: np.eye(2)[labels] for split, labels in (("train", data.y_train), ("test", data.y_test))}
    for _ in range(25):
        start = [(layer.W.copy(), layer.b.copy()) for layer in linear_layers(model)]
        ours = model.train(data.X_train, data.y_train, CrossEntropy(), lr=0.5, steps=1, eval_every=1,
                           X_test=data.X_test, y_test=data.y_test)
        params, reference = references.mlp_reference(data.X_train, data.y_train, data.X_test, data.y_test, start,
                                                     lr=0.5, steps=1, eval_every=1)
        step = softmax_mlp_tolerances(data.X_train, one_hot["train"], start, "relu", np.float64)
        for layer, (W, b), (W0, b0), (W_bound, b_bound) in zip(linear_layers(model), params, start, step["grads"]):
            for got, want, before, bound in ((layer.W, W, W0, W_bound), (layer.b, b, b0, b_bound)):
                # lr times the gradient's bound, and the update rounds its product and its sum
                assert_within(got, want, 0.5 * bound + sum_tolerance(2, np.abs(before) + np.abs(before - want),
                                                                     np.float64), "weights after a step")
        for row, expected, weights in zip(ours.history, reference, (start, params), strict=True):
            for split, X in (("train", data.X_train), ("test", data.X_test)):
                bounds = softmax_mlp_tolerances(X, one_hot[split], weights, "relu", np.float64)
                assert_within(row[f"{split}_loss"], expected[f"{split}_loss"], bounds["mean_loss"], f"{split} loss")
                logits = X
                for k, (W, b) in enumerate(weights):
                    logits = logits @ W + b if k == len(weights) - 1 else np.maximum(logits @ W + b, 0)
                assert (round(abs(row[f"{split}_accuracy"] - expected[f"{split}_accuracy"]) * len(X))
                        <= near_ties(logits, bounds["logits"]))


@pytest.mark.numerics
def test_perceptron_reference_matches_ours():
    """float64 both; BLAS products against Python's left-to-right sums.

    While no margin is within its bound of 0, both sides misclassify the same points
    and add gradients of the same terms: differences add up and never grow. Each
    epoch's gradient sums at most N terms, each divided by N (|g| <= G, the mean
    |[x, 1]|), and the update rounds its product and sum, |w_k| <= k lr G.
    """
    from nnlab.models import perceptron

    data = gaussians(20, [1.0, 1.0], [0.0, 0.0], np.eye(2), np.eye(2), 0.25, 0)
    lr, n = 0.1, len(data.y_train)
    ours = perceptron.train(data.X_train, data.y_train, data.X_test, data.y_test, lr=lr, max_epochs=30)
    w, history = references.perceptron_reference(data.X_train, data.y_train, data.X_test, data.y_test,
                                                 lr=lr, max_epochs=30)
    assert len(history) == len(ours.result.history)
    G = np.mean(np.abs(perceptron.with_bias(data.X_train)), axis=0)
    bound = np.zeros_like(G)
    for epoch, (row, expected) in enumerate(zip(ours.result.history, history), start=1):
        weights = perceptron.train(data.X_train, data.y_train, data.X_test, data.y_test, lr=lr,
                                   max_epochs=epoch).model.weights
        bound = bound + lr * sum_tolerance(n + 2, G, np.float64) + sum_tolerance(2, (epoch + 1) * lr * G, np.float64)
        assert row["epoch"] == expected["epoch"]
        for split, X, y in (("train", data.X_train, data.y_train), ("test", data.X_test, data.y_test)):
            reach = np.abs(perceptron.with_bias(X))
            margins = perceptron.with_bias(X) @ weights
            margin_bound = reach @ bound + sum_tolerance(3, reach @ np.abs(weights), np.float64)
            if split == "train":   # the same points misclassified, or the argument above fails
                assert np.all(np.abs(margins) > margin_bound)
            assert_within(row[f"{split}_loss"], expected[f"{split}_loss"],
                          np.mean(margin_bound) + sum_tolerance(len(y) + 1, np.mean(np.abs(margins)), np.float64),
                          f"{split} loss")
            assert (round(abs(row[f"{split}_accuracy"] - expected[f"{split}_accuracy"]) * len(y))
                    <= np.count_nonzero(np.abs(margins) <= margin_bound))
    assert_within(ours.model.weights, w, bound, "weights")


@pytest.mark.numerics
def test_mnist_reference_matches_train_numpy():
    from nnlab.datasets.mnist import NormalizedMnist
    from nnlab.models import linear

    rng = np.random.default_rng(0)
    labels_train, labels_test = rng.integers(0, 10, 300), rng.integers(0, 10, 80)
    X_train = rng.integers(0, 256, (300, 784)).astype(np.float32) / 255
    X_test = rng.integers(0, 256, (80, 784)).astype(np.float32) / 255
    eye = np.eye(10, dtype=np.float32)
    data = NormalizedMnist(X_train, eye[labels_train], labels_train, X_test, eye[labels_test], labels_test)
    steps = 12
    trajectory = []
    result = linear.train_numpy(data, lr=0.01, batch_size=20, iterations=steps, eval_every=1,
                                rng=np.random.default_rng(1), on_step=lambda step, W: trajectory.append(W.copy()))
    draw = np.random.default_rng(1)
    batches = [linear.draw_batch(draw, 300, 20) for _ in range(steps)]
    reference, losses, train_accs, test_accs = references.mnist_reference(
        data.X_train, data.Y_train, data.X_test, data.Y_test, batches, lr=0.01)
    # float32 batch products against float64 ones: within the bound of two float32 evaluations
    tolerance = trajectory_tolerance(data, trajectory, lr=0.01, batch_size=20, rng=np.random.default_rng(1))
    assert np.linalg.norm(np.array(trajectory[-1]) - reference[-1]) <= tolerance
    for W, row, loss, train_acc, test_acc in zip(trajectory, result.history, losses, train_accs, test_accs):
        assert row["train_loss"] == pytest.approx(loss, rel=0, abs=loss_tolerance(W, X_train, data.Y_train))
        assert images_apart(row["train_accuracy"], train_acc, 300) <= flippable_images(W, X_train)
        assert images_apart(row["test_accuracy"], test_acc, 80) <= flippable_images(W, X_test)


@pytest.mark.numerics
@pytest.mark.parametrize("run", [0, 1])
def test_tanh_reference_matches_train_runs(run, monkeypatch):
    """float64 both (the point is that the reference does what ours does); ours records its steps,
    and the parameters may differ by the trajectory bound of tests/test_tanh_mlp.py."""
    from nnlab.models import tanh_mlp
    from test_tanh_mlp import NAMES, recorded_steps, scored_bounds, trajectory_bound

    data = tanh_mlp.CirclesData.from_split(circles(60, 0.1, 0.5, 0.5, 0, 2.0, 0.5), standardize=True,
                                           dtype=torch.float64)
    steps = recorded_steps(monkeypatch, run)
    ours = tanh_mlp.train_runs(data, hidden_units=5, batch_size=7, lrs=[0.05, 0.2], epochs=4, seed=3)[run]
    monkeypatch.undo()
    generator = torch.Generator().manual_seed(3)
    init = tanh_mlp.init_params(2, 5, 2, std=0.3, generator=generator, dtype=torch.float64)
    params, history = references.tanh_run_reference(data.X_train, data.Y_train, data.X_test, data.Y_test, init,
                                                    eta=ours.lr, batch_size=7, epochs=4, generator=generator)
    bounds = trajectory_bound(steps, ours.lr)
    distance = np.sqrt(sum(float(torch.sum((ours.params[k] - params[k]) ** 2)) for k in NAMES))
    assert distance <= bounds[-1]
    per_epoch = len(steps) // 4
    for epoch, (row, expected) in enumerate(zip(ours.history, history, strict=True), start=1):
        at = steps[epoch * per_epoch][0] if epoch < 4 else ours.params
        scored = scored_bounds(at, data, bounds[epoch * per_epoch - 1])
        assert (round(abs(row["test_accuracy"] - expected["test_accuracy"]) * len(data.X_test))
                <= round(scored["test_accuracy"] * len(data.X_test)))


REVIEWS = [
    "I <b>loved</b> this film!<br /><br />It's 10/10, worth 1,500 viewings &amp; more.",
    "Didn't like it: the plot was thin\\nand the acting... not good. 3 stars_out_of 5",
    "An odd one — 'great' they said; I'd say running, runs, RUNNER.",
]


@pytest.mark.numerics
def test_cleaning_and_tfidf_references_match_ours():
    from nltk.stem import PorterStemmer

    from nnlab.text import Cleaner, CleaningConfig, number_to_words, stop_word_list, tfidf_features

    config = CleaningConfig(stop_words="sklearn", normalise="porter")
    ours = [Cleaner(config)(text) for text in REVIEWS]
    stop_words, stem = sorted(stop_word_list(config)), PorterStemmer().stem
    plain = [references.clean_review_reference(text, stop_words, stem, number_to_words) for text in REVIEWS]
    assert plain == ours
    X_train, X_test, vectorizer = tfidf_features(ours[:2], ours[2:], 20)
    vocabulary = list(vectorizer.get_feature_names_out())
    R_train, R_test, reference_vocabulary = references.tfidf_reference(plain[:2], plain[2:], 20)
    assert vocabulary == reference_vocabulary
    # float32 against float64: each value is tf * idf (idf and product round) over the row's l2 norm (a sum of
    # the row's nnz squares, a square root, a division): at most nnz + 8 roundings relative to the value
    for ours_split, reference_split in ((X_train, R_train), (X_test, R_test)):
        nnz = np.count_nonzero(reference_split, axis=1)[:, None]
        assert_within(ours_split.toarray(), reference_split,
                      sum_tolerance(nnz + 8, np.abs(reference_split), np.float32), "TF-IDF")


@pytest.mark.numerics
def test_imdb_epoch_reference_matches_train_classifier():
    """One SGD step (a training set of one batch), so that no difference can grow: float32 sparse
    (embedding_bag) against dense products, within the bounds of :func:`softmax_mlp_tolerances`.

    A sigmoid unit with BCE is the softmax of the logits ``(0, z)`` with cross-entropy;
    torch computes it unfused: sigmoid (4 roundings), BCE's ``(p - y) / (p (1 - p))``
    and sigmoid's ``p (1 - p)`` (3 each, and twice 1 - p's relative error p / (1 - p)).
    """
    from nnlab.models import sentiment
    from nnlab.runtime import seed_torch

    rng = np.random.default_rng(0)
    X = sp.random(58, 30, density=0.2, format="csr", dtype=np.float32, random_state=0)
    y = rng.integers(0, 2, 58)
    lr = 0.1
    config = sentiment.ClassifierConfig(hidden_units=(6, 4), batch_size=8, epochs=1, lr=lr)
    ours = sentiment.train_classifier(X[:8], y[:8], X[8:], y[8:], config, seed=5, device=torch.device("cpu"),
                                      log=lambda line: None)
    seed_torch(5)
    model = references.Net(30, config.hidden_units)
    start = [p.detach().numpy().copy() for p in model.parameters()]
    probabilities = references.imdb_epoch_reference(model, X[:8].toarray(), y[:8], X[8:].toarray(), lr=lr,
                                                    batch_size=8, generator=torch.Generator().manual_seed(5))

    def layers(params):   # (in, out) weights; the output unit as the second of two logits (0, z)
        W1, b1, W2, b2, W3, b3 = params
        return [(W1.T, b1), (W2.T, b2), (np.c_[np.zeros_like(W3.T), W3.T], np.r_[0.0, b3])]

    X_train, Y_train = X[:8].toarray().astype(np.float64), np.eye(2)[y[:8]]
    p = 1 / (1 + np.exp(-(np.maximum(np.maximum(X_train @ start[0].T + start[1], 0) @ start[2].T + start[3], 0)
                          @ start[4].T + start[5])))
    extra = 4 + 2 * 3 + 2 * int(np.ceil(np.max(p / (1 - p))))
    step = softmax_mlp_tolerances(X_train, Y_train, layers(start), "relu", np.float32, output_roundings=extra)
    grad_bounds = [step["grads"][0][0].T, step["grads"][0][1], step["grads"][1][0].T, step["grads"][1][1],
                   step["grads"][2][0][:, 1:].T, step["grads"][2][1][1:]]
    after = [p.detach().numpy() for p in model.parameters()]
    param_bounds = []
    for a, b, before, bound in zip(ours.model.linear_parameters(), after, start, grad_bounds, strict=True):
        # lr times the gradient's bound, and SGD rounds its product and its sum
        param_bounds.append(lr * bound + sum_tolerance(2, np.abs(before) + np.abs(before - b), np.float32))
        assert_within(a.detach(), b, param_bounds[-1], "parameters after a step")
    # test probabilities: the forward bound at the new weights, plus the weights' bounds carried through
    # |W| and the activations (|relu'| <= 1), then sigmoid (slope <= 1/4, 4 roundings of its own)
    X_test = X[8:].toarray().astype(np.float64)
    forward = softmax_mlp_tolerances(X_test, np.eye(2)[y[8:]], layers(after), "relu", np.float32)
    a, reach = X_test, np.zeros_like(X_test)
    for k in range(3):
        W, b = after[2 * k].T, after[2 * k + 1]
        reach = reach @ np.abs(W) + np.abs(a) @ param_bounds[2 * k].T + param_bounds[2 * k + 1]
        a = a @ W + b if k == 2 else np.maximum(a @ W + b, 0)
    z_bound = forward["logits"][:, 1] + reach[:, 0]
    assert_within(sentiment.predict_proba(ours.model, X[8:], torch.device("cpu")), probabilities,
                  z_bound / 4 + sum_tolerance(4, np.abs(probabilities), np.float32), "test probabilities")


@pytest.mark.numerics
def test_mri_normalize_reference_matches_streamed(tmp_path):
    from nnlab import images

    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (11, 6, 5), dtype=np.uint8), rng.integers(0, 256, (4, 6, 5), dtype=np.uint8)
    scaler = images.fit_pixel_scaler(train, chunk_size=3)
    images.write_standardized(train, scaler, 3, 3, tmp_path / "train.npy")
    images.write_standardized(test, scaler, 3, 3, tmp_path / "test.npy")
    reference_train, reference_test = references.mri_normalize_reference(train, test, 3)
    # float32 standardised slices against float64 ones: the bound of tests/test_mri.py, per channel copy
    for name, reference in (("train", reference_train), ("test", reference_test)):
        assert_within(np.load(tmp_path / f"{name}.npy"), reference,
                      standardized_bound(reference.reshape(len(reference), 3, -1), train, 3).reshape(reference.shape),
                      f"{name} slices")


def test_cnn_epoch_reference_matches_train_classifier():
    from nnlab.models import mri_nets
    from nnlab.runtime import seed_torch
    from nnlab.torch_train import ArrayDataset, train_classifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 3, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 4, 23)
    seed_torch(2)
    ours = mri_nets.cnn1((3, 16, 16))
    train_classifier(ours, ArrayDataset(x[:17], labels[:17]), ArrayDataset(x[17:], labels[17:]), epochs=1,
                     batch_size=5, lr=0.05, device=torch.device("cpu"), seed=9, n_classes=4)
    seed_torch(2)
    model = mri_nets.cnn1((3, 16, 16))
    # ours draws the order from a generator seeded with `seed` and reads each batch in sorted order
    order = torch.randperm(17, generator=torch.Generator().manual_seed(9))
    batches = [torch.sort(chunk).values for chunk in order.split(5)]
    predicted = references.cnn_epoch_reference(model, torch.from_numpy(x[:17]), torch.from_numpy(labels[:17]),
                                               torch.from_numpy(x[17:]), lr=0.05, batches=batches)
    for a, b in zip(ours.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert torch.equal(ours.eval()(torch.from_numpy(x[17:])).argmax(dim=1), predicted)
