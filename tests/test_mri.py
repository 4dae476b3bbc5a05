"""MRI (report 001): folder loader, phantom generator, chunked scaler, model shapes, training loop."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.preprocessing import StandardScaler

from nnlab import images
from nnlab.datasets import mri, mri_phantom
from nnlab.errors import DataError, ParamError
from nnlab.models import mri_nets
from nnlab.results import check_model_evaluation
from nnlab.torch_train import ArrayDataset, augment, run_metrics, scheduled_lr
from tolerances import assert_within, sum_tolerance

from conftest import peak_memory_mib

H, W = 16, 12   # fixture images: small, so the tests stay fast


def jpeg_bytes(height=H, width=W, value=100) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width), value, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_tree(root, per_class=2, split="train"):
    for label, name in enumerate(mri.CLASS_NAMES):
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"{i}.jpg").write_bytes(jpeg_bytes(value=40 * label + i))
    return root


# -- folder loader ------------------------------------------------------------
def test_folder_loader_reads_the_kaggle_layout(tmp_path):
    slices = mri.load_folder(make_tree(tmp_path), "train", height=H, width=W)
    assert slices.images.shape == (8, H, W) and slices.images.dtype == np.uint8
    assert slices.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert abs(int(slices.images[2, 0, 0]) - 40) <= 2   # class 1, image 0 was drawn at 40
    assert slices.skipped == []


def png_16_bit(height=H, width=W) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width), 40_000, dtype=np.uint16)).save(buffer, format="PNG")  # mode I;16
    return buffer.getvalue()


def jpeg_declaring(height: int, width: int) -> bytes:
    """A tiny JPEG whose frame header (SOF0) declares ``height`` x ``width``: a decompression bomb."""
    data = bytearray(jpeg_bytes(8, 8))
    frame = data.index(b"\xff\xc0")
    data[frame + 5:frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("content, reason", [
    (jpeg_bytes()[:200], "unreadable"),                          # truncated JPEG
    (b"not an image at all", "unreadable"),
    (jpeg_bytes(height=H + 1), f"expected {W}x{H}"),               # wrong size
    (png_16_bit(), "I;16 image: more than 8 bits per pixel"),    # "L" clipped 99.6 % of its pixels to 255
    (jpeg_declaring(20_000, 20_000), "decompression bomb"),      # raised DecompressionBombError, even under skip
], ids=["truncated", "not-an-image", "wrong-size", "16-bit", "bomb"])
def test_bad_file_is_an_error_naming_it_or_a_counted_skip(tmp_path, content, reason):
    root = make_tree(tmp_path)
    bad = root / "train" / "NonDemented" / "bad.jpg"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=reason) as caught:
        mri.load_folder(root, "train", height=H, width=W)
    assert str(bad) in str(caught.value) and "\n" not in str(caught.value)

    slices = mri.load_folder(root, "train", height=H, width=W, on_bad_file="skip")
    assert len(slices.labels) == 8
    assert [row["file"] for row in slices.skipped] == [str(bad)]
    assert reason in slices.skipped[0]["reason"]


def test_files_are_read_in_the_order_of_their_numbers(tmp_path):
    folder = tmp_path / "train" / "NonDemented"
    folder.mkdir(parents=True)
    for number in (10, 2, 1, 100):
        (folder / f"nonDem{number}.jpg").write_bytes(jpeg_bytes(value=number))
    slices = mri.load_folder(tmp_path, "train", height=H, width=W)
    assert [int(round(image.mean())) for image in slices.images] == [1, 2, 10, 100]


def test_validation_is_the_last_block_of_each_class():
    # Labels interleaved, images numbered in file order: each class's validation rows are its last ones.
    labels = np.array([2, 0, 2, 2, 0, 2, 2, 0, 2, 2, 1, 2, 2])
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None]
    train, validation = mri.split_validation(mri.Slices(images, labels, skipped=[{"file": "x"}]), 0.3)
    # class 2 (9 slices): round(2.7) = 3 held out; class 0 (3): 1; class 1 (1 slice): none, it keeps its one.
    assert validation.images.ravel().tolist() == [7, 9, 11, 12]
    assert validation.labels.tolist() == [0, 2, 2, 2]
    assert train.images.ravel().tolist() == [0, 1, 2, 3, 4, 5, 6, 8, 10]
    assert train.labels.tolist() == [2, 0, 2, 2, 0, 2, 2, 2, 1]
    assert train.skipped == [{"file": "x"}] and validation.skipped == []
    with pytest.raises(DataError, match="holds out no slice"):
        mri.split_validation(mri.Slices(images[:2], np.array([0, 1])), 0.2)


def test_by_brain_holds_out_every_level_of_the_last_brains_of_each_class():
    # Class 0 numbered level by level over 5 brains (brain = place mod 5), one file skipped (place 7);
    # class 1 has 2 brains: one is held out, one stays; class 3 has a single brain and keeps it.
    places = [*(p for p in range(15) if p != 7), 0, 1, 2, 3, 0, 1]
    labels = np.array([0] * 14 + [1] * 4 + [3] * 2)
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None]
    brains = {"MildDemented": 5, "ModerateDemented": 2, "NonDemented": 100, "VeryMildDemented": 1}
    slices = mri.Slices(images, labels, positions=np.array(places))
    train, validation = mri.split_validation(slices, 0.3, brains)
    # round(0.3 * 5) = 2 brains of class 0 (brains 3 and 4: places 3, 4, 8, 9, 13, 14); max(1, round(0.6)) = 1 of 2.
    assert validation.images.ravel().tolist() == [3, 4, 7, 8, 12, 13, 15, 17]
    assert train.images.ravel().tolist() == [0, 1, 2, 5, 6, 9, 10, 11, 14, 16, 18, 19]


def test_validation_split_keeps_a_slice_or_a_brain_of_every_class():
    # A block: round(0.9 * 2) = 2 slices of class 0, but each class keeps one; round(0.25 * 2) = 0 holds out none.
    images = np.arange(8, dtype=np.uint8)[:, None, None]
    slices = mri.Slices(images[:2], np.array([0, 0]), empty_folders=["e"])
    train, validation = mri.split_validation(slices, 0.9)
    assert (train.images.ravel().tolist(), validation.images.ravel().tolist()) == ([0], [1])
    assert train.empty_folders == ["e"] and validation.empty_folders == []
    with pytest.raises(DataError, match=r"^a validation fraction of 0\.25 holds out no slice of 2$"):
        mri.split_validation(slices, 0.25)
    # By brain, 4 brains: at least one held out (0.01), at most three (0.99).
    brains = {"MildDemented": 4, "ModerateDemented": 2, "NonDemented": 1, "VeryMildDemented": 3}
    by_brain = mri.Slices(images, np.zeros(8, dtype=np.int64), positions=np.arange(8))
    assert mri.split_validation(by_brain, 0.01, brains)[1].images.ravel().tolist() == [3, 7]
    assert mri.split_validation(by_brain, 0.99, brains)[1].images.ravel().tolist() == [1, 2, 3, 5, 6, 7]
    # Every slice of a class in a held-out brain: nothing left to train on.
    last_brain = mri.Slices(images[:2], np.array([1, 1]), positions=np.array([1, 3]))
    with pytest.raises(DataError, match=r"^a validation fraction of 0\.5 holds out every slice of 2$"):
        mri.split_validation(last_brain, 0.5, brains)


def test_class_counts_name_every_class():
    slices = mri.Slices(np.zeros((3, 1, 1), dtype=np.uint8), np.array([0, 2, 2]))
    assert slices.class_counts() == {"MildDemented": 1, "ModerateDemented": 0, "NonDemented": 2, "VeryMildDemented": 0}


def test_decompression_bomb_is_never_decoded(tmp_path):
    root = make_tree(tmp_path)
    (root / "train" / "MildDemented" / "bomb.jpg").write_bytes(jpeg_declaring(20_000, 20_000))
    error, peak = peak_memory_mib(f"from nnlab.datasets import mri; mri.load_folder({str(root)!r}, 'train', "
                                  f"height={H}, width={W}, on_bad_file='skip')")
    assert error == "" and peak < 1024, (error, peak)


def test_mnist_predictor_refuses_a_bomb_as_the_mri_reader_does(tmp_path):
    """Was a PIL DecompressionBombError traceback from `python -m nnlab.predict mnist`."""
    from nnlab.predict import read_digit

    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(jpeg_declaring(20_000, 20_000))
    with pytest.raises(DataError, match=rf"{bomb}: refused as a possible decompression bomb \(Image size "):
        read_digit(bomb, 28)


def test_link_out_of_the_folder_is_refused_as_the_imdb_reader_does(tmp_path):
    root = make_tree(tmp_path / "mri")
    (tmp_path / "outside.jpg").write_bytes(jpeg_bytes())
    link = root / "train" / "NonDemented" / "9.jpg"
    link.symlink_to(tmp_path / "outside.jpg")
    with pytest.raises(DataError, match=rf"^{link}: a link to {tmp_path / 'outside.jpg'}, outside {root}$"):
        mri.load_folder(root, "train", height=H, width=W, on_bad_file="skip")
    link.unlink()
    link.symlink_to(root / "train" / "NonDemented" / "0.jpg")   # a link within the folder is read
    assert len(mri.load_folder(root, "train", height=H, width=W).labels) == 9


def test_empty_class_folder_is_listed(tmp_path):
    root = make_tree(tmp_path)
    empty = root / "train" / "ModerateDemented"
    for image in empty.iterdir():
        image.unlink()
    slices = mri.load_folder(root, "train", height=H, width=W)
    assert slices.empty_folders == [str(empty)] and slices.class_counts()["ModerateDemented"] == 0


def test_unknown_class_folder_is_refused(tmp_path):
    root = make_tree(tmp_path)
    (root / "train" / "SevereDemented").mkdir()
    with pytest.raises(DataError, match="SevereDemented: unknown class folder"):
        mri.load_folder(root, "train", height=H, width=W, on_bad_file="skip")


def test_missing_split_and_stray_file_are_refused(tmp_path):
    root = make_tree(tmp_path)
    with pytest.raises(DataError, match="test: split folder not found"):
        mri.load_folder(root, "test", height=H, width=W)
    (root / "train" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="notes.txt: unexpected file"):
        mri.load_folder(root, "train", height=H, width=W)


def test_folder_loader_on_the_real_kaggle_test_split(shared_data):
    root = shared_data / "alzheimer" / "Alzheimer_s Dataset"
    slices = mri.load_folder(root, "test")
    assert slices.images.shape == (40, mri.KAGGLE_HEIGHT, mri.KAGGLE_WIDTH)
    assert slices.class_counts() == {name: 10 for name in mri.CLASS_NAMES}
    assert slices.images.max() > 200 and slices.images[:, 0, 0].max() < 30   # bright brain, dark corner


# -- phantom ------------------------------------------------------------------
def test_phantom_follows_the_kaggle_balance_and_seed():
    assert mri_phantom.class_counts(1000).tolist() == [140, 10, 500, 350]
    assert mri_phantom.class_counts(7).sum() == 7
    a = mri_phantom.phantom_splits(n_train=60, n_test=20, height=40, width=36, noise=0.05,
                                   severity_spread=0.5, seed=3)
    b = mri_phantom.phantom_splits(n_train=60, n_test=20, height=40, width=36, noise=0.05,
                                   severity_spread=0.5, seed=3)
    assert np.array_equal(a["train"].images, b["train"].images)
    assert a["train"].images.shape == (60, 40, 36) and len(a["test"].labels) == 20
    assert not np.array_equal(a["train"].images[:20], a["test"].images)


def test_phantom_atrophy_grows_the_dark_area_with_severity():
    rng = np.random.default_rng(0)
    dark = [np.mean([(mri_phantom.render_slice(severity, 64, 56, rng, noise=0) < 0.3).mean()
                     for _ in range(10)]) for severity in (0, 1, 2, 3)]
    assert dark == sorted(dark) and dark[3] > dark[0] + 0.05


# -- chunked standardisation ---------------------------------------------------
def statistics_bound(raw: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """float64 bounds on two evaluations (chunked or whole) of StandardScaler's per-pixel mean and scale.

    The pixel sums are exact (integers far below 2**53), but each chunk turns its
    running sum into ``mean * count`` and back: 3 roundings of the mean per chunk.
    The unnormalised variance adds the n squared deviations, each off by twice the
    deviation times the rounding of ``x - mean`` (at most u (max|x| + |mean|)),
    and one combination term per chunk whose error the same deviations bound; so
    n + 4 per chunk roundings of that magnitude. The scale (a square root of it
    over n) has half its relative bound, and two more roundings.
    """
    flat = raw.reshape(len(raw), -1).astype(np.float64)
    chunks, n = -(-len(flat) // chunk_size), len(flat)
    mean = flat.mean(axis=0)
    deviation = np.abs(flat - mean)
    magnitude = np.sum(deviation ** 2 + 2 * deviation * (np.abs(flat).max(axis=0) + np.abs(mean)), axis=0)
    m2_bound = sum_tolerance(n + 4 * chunks, magnitude, np.float64)
    scale = flat.std(axis=0)
    unnormalised = np.where(scale > 0, scale ** 2 * n, 1.0)   # constant pixels: StandardScaler's scale 1, exactly
    scale_bound = np.where(scale > 0, scale * m2_bound / (2 * unnormalised) + sum_tolerance(2, scale, np.float64), 0)
    return sum_tolerance(3 * chunks, np.abs(mean), np.float64), scale_bound


@pytest.mark.numerics
def test_chunked_statistics_equal_the_in_memory_ones():
    raw = np.random.default_rng(1).integers(0, 256, size=(53, 9, 7), dtype=np.uint8)
    raw[:, 0, 0] = 17   # a constant pixel (the black border): scale 1, never a division by 0
    chunked = images.fit_pixel_scaler(raw, chunk_size=8)
    whole = StandardScaler().fit(raw.reshape(53, -1).astype(np.float64))
    mean_bound, scale_bound = statistics_bound(raw, 8)
    assert_within(chunked.mean_, whole.mean_, mean_bound, "means")
    assert_within(chunked.scale_, whole.scale_, scale_bound, "scales")


def standardized_bound(values: np.ndarray, raw: np.ndarray, chunk_size: int) -> np.ndarray:
    """Bound on float32 standardised ``values`` against exact float64 ones from the same statistics.

    The scaler works in the input's float32: the mean and scale round to it, then
    ``x - mean`` and ``/ scale`` round: at most 3 roundings of |value| and one of
    |mean| / scale, covered by two float32 evaluations' worth of ``|value| + |mean| / scale``;
    the float64 statistics' bounds (far below) pass through ``1 / scale``.
    """
    flat = raw.reshape(len(raw), -1).astype(np.float64)
    mean_bound, scale_bound = statistics_bound(raw, chunk_size)
    mean, scale = flat.mean(axis=0), flat.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return (sum_tolerance(2, np.abs(values) + np.abs(mean) / scale, np.float32)
            + (mean_bound + np.abs(values) * scale_bound) / scale)


@pytest.mark.numerics
def test_standardized_file_is_memory_mappable_and_stacks_channels(tmp_path):
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, size=(30, 6, 5), dtype=np.uint8)
    test = rng.integers(100, 256, size=(11, 6, 5), dtype=np.uint8)   # another distribution
    scaler = images.fit_pixel_scaler(train, chunk_size=4)
    for name, data in (("train", train), ("test", test)):
        images.write_standardized(data, scaler, 3, 4, tmp_path / f"{name}.npy")
    out_train = np.load(tmp_path / "train.npy", mmap_mode="r")
    out_test = np.load(tmp_path / "test.npy", mmap_mode="r")
    assert isinstance(out_train, np.memmap) and out_train.dtype == np.float32
    assert out_train.shape == (30, 3, 6, 5) and out_test.shape == (11, 3, 6, 5)
    assert np.array_equal(out_train[:, 0], out_train[:, 2])
    # Fitted on train only: train is centred per pixel, test (shifted up) is not. The exact column means
    # are 0; the float32 mean adds 30 values, each within its standardisation bound.
    values = out_train[:, 1].reshape(30, -1).astype(np.float64)
    centred_bound = (standardized_bound(values, train, 4).mean(axis=0)
                     + sum_tolerance(30 + 1, np.abs(values).mean(axis=0), np.float32))
    assert_within(out_train.mean(axis=0)[1].reshape(-1), 0.0, centred_bound, "train means")
    assert out_test.mean() > 0.5
    expected = (test.reshape(11, -1) - train.reshape(30, -1).mean(0)) / train.reshape(30, -1).std(0)
    assert_within(out_test[:, 1].reshape(11, -1), expected, standardized_bound(expected, train, 4),
                  "standardised test slices")


# -- models ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(mri_nets.MODELS))
@pytest.mark.parametrize("shape", [(3, 48, 40), (1, 48, 40), (3, 208, 176)])
def test_every_model_gives_four_logits(name, shape):
    model = mri_nets.MODELS[name](shape)
    with torch.no_grad():
        out = model.eval()(torch.randn(2, *shape))
    assert out.shape == (2, 4)
    assert not torch.allclose(out.exp().sum(1), torch.ones(2))   # logits, not probabilities


def test_too_small_input_is_a_param_error():
    with pytest.raises(ParamError, match="cnn3: input 3x20x20 is too small"):
        mri_nets.cnn3((3, 20, 20))


# -- training -------------------------------------------------------------------
def tiny_datasets(height=40, width=36):
    """80 noisy images whose brightness is 2 x their label: easy to learn."""
    rng = np.random.default_rng(0)
    labels = np.arange(80) % 4
    x = rng.normal(size=(80, 1, height, width)).astype(np.float32) + 2.0 * labels[:, None, None, None]
    return ArrayDataset(x[:60], labels[:60]), ArrayDataset(x[60:], labels[60:])


def scored_fit(name: str, train, test, **options) -> tuple[dict, np.ndarray | None]:
    cpu = torch.device("cpu")
    model, result = mri_nets.fit(name, train, test, seed=1, device=cpu, **options)
    return run_metrics(model, result, train, test, list(mri.CLASS_NAMES), cpu, "synthetic")


def test_training_learns_and_is_deterministic():
    train, test = tiny_datasets(4, 4)
    runs = [scored_fit("simple_nn2", train, test, epochs=30, batch_size=10, lr=0.05) for _ in range(2)]
    (metrics, predicted), (again, _) = runs
    assert metrics == again
    assert metrics["train"]["accuracy"] > 0.9 and metrics["test"]["accuracy"] > 0.5   # chance: 0.25
    assert metrics["diverged"] is False and metrics["trained"] == 30 and metrics["unit"] == "epoch"
    assert len(predicted) == 20 and set(metrics["test"]["recall"]) == set(mri.CLASS_NAMES)
    check_model_evaluation(metrics)


def test_warmup_cosine_climbs_then_decays_to_zero():
    rates = [scheduled_lr(1.0, "warmup_cosine", step, 100) for step in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)   # warm-up: 10 % of the steps
    assert all(a >= b for a, b in zip(rates[9:], rates[10:])) and rates[-1] < 0.001
    assert scheduled_lr(0.3, "constant", 57, 100) == 0.3


def test_augmentation_shifts_and_relights_each_image_reproducibly():
    x = torch.zeros(2, 3, 9, 7)
    x[:, :, 4, 3] = 1.0   # one bright pixel in the middle of each image, in every channel
    moved = augment(x, torch.Generator().manual_seed(0), shift_pixels=2, intensity_jitter=0.0)
    again = augment(x, torch.Generator().manual_seed(0), shift_pixels=2, intensity_jitter=0.0)
    assert torch.equal(moved, again)
    for image in moved:
        channels, rows, cols = torch.nonzero(image == 1.0, as_tuple=True)
        assert channels.tolist() == [0, 1, 2] and len(set(rows.tolist())) == len(set(cols.tolist())) == 1
        assert abs(rows[0] - 4) <= 2 and abs(cols[0] - 3) <= 2
    relit = augment(x, torch.Generator().manual_seed(0), shift_pixels=0, intensity_jitter=0.5)
    gain_and_offset = [sorted(set(image.flatten().tolist())) for image in relit]
    assert all(len(values) == 2 for values in gain_and_offset)   # one gain and one offset per image
    assert gain_and_offset[0] != gain_and_offset[1]
    # Both at once: the rolled batch relit as the formula says, the caller's batch untouched.
    noise = torch.randn(4, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    kept = noise.clone()
    both = augment(noise, torch.Generator().manual_seed(2), shift_pixels=2, intensity_jitter=0.5)
    draws = torch.Generator().manual_seed(2)
    shifts = torch.randint(-2, 3, (4, 2), generator=draws).tolist()
    gain, offset = (0.5 * torch.randn(4, 1, 1, 1, generator=draws) for _ in range(2))
    rolled = torch.stack([torch.roll(image, shift, dims=(1, 2)) for image, shift in zip(noise, shifts)])
    assert torch.equal(both, rolled * (1 + gain) + offset) and torch.equal(noise, kept)
    relit = augment(noise, torch.Generator().manual_seed(3), shift_pixels=0, intensity_jitter=0.5)
    draws = torch.Generator().manual_seed(3)
    gain, offset = (0.5 * torch.randn(4, 1, 1, 1, generator=draws) for _ in range(2))
    assert torch.equal(relit, noise * (1 + gain) + offset) and torch.equal(noise, kept)


def test_recipe_with_validation_learns_and_is_deterministic():
    train, test = tiny_datasets(32, 32)
    recipe = dict(epochs=8, batch_size=10, lr=0.01, optimizer="adamw", weight_decay=1e-4,
                  lr_schedule="warmup_cosine", shift_pixels=2, intensity_jitter=0.1, class_weight="balanced")
    histories = [mri_nets.fit("cnn_improved", train, test, validation=test, seed=1, device=torch.device("cpu"),
                              **recipe)[1].history for _ in range(2)]
    assert histories[0] == histories[1]
    last = histories[0][-1]
    assert last["validation_accuracy"] == last["test_accuracy"] > 0.5   # chance: 0.25
    assert 0 < last["validation_macro_f1"] <= 1


def same_weights(model: torch.nn.Module, other: torch.nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_refit_trains_the_saved_model_on_train_and_validation_together():
    train, test = tiny_datasets(4, 4)
    validation = ArrayDataset(test.features[:12], test.labels[:12])
    recipe = dict(epochs=3, batch_size=10, lr=0.05, seed=1, device=torch.device("cpu"))
    validation_model, validation_run = mri_nets.fit("simple_nn2", train, test, validation=validation, **recipe)
    everything = ArrayDataset(np.concatenate([train.features, validation.features]),
                              np.concatenate([train.labels, validation.labels]))
    final_model, final_run = mri_nets.fit("simple_nn2", everything, test, **recipe)

    model, result = mri_nets.fit_and_refit("simple_nn2", train, validation, test, refit=True,
                                           checkpoints=(None, None), **recipe)
    assert same_weights(model, final_model)
    for row, final, chosen_on in zip(result.history, final_run.history, validation_run.history, strict=True):
        assert row == {**final, "validation_loss": chosen_on["validation_loss"],
                       "validation_accuracy": chosen_on["validation_accuracy"],
                       "validation_macro_f1": chosen_on["validation_macro_f1"]}
    model, result = mri_nets.fit_and_refit("simple_nn2", train, validation, test, refit=False,
                                           checkpoints=(None, None), **recipe)
    assert result.history == validation_run.history
    assert same_weights(model, validation_model)


def test_real_training_slices_are_numbered_level_by_level(shared_data):
    # docs/studies/001.md: the Kaggle files run through the axial levels, every brain of a class at
    # each level in turn (100 NonDemented brains), so the same brain returns every 100 numbers.
    folder = shared_data / "alzheimer" / "Alzheimer_s Dataset" / "train" / "NonDemented"
    images = np.stack([np.asarray(Image.open(folder / f"nonDem{number}.jpg"), dtype=np.float32)[::4, ::4].ravel()
                       for number in range(300)])
    images = (images - images.mean(axis=1, keepdims=True)) / images.std(axis=1, keepdims=True)

    def mean_correlation(lag: int) -> float:
        return float(np.mean(np.sum(images[:-lag] * images[lag:], axis=1) / images.shape[1]))

    same_level_other_brain, next_level_same_brain = mean_correlation(1), mean_correlation(100)
    assert next_level_same_brain > 0.97 and same_level_other_brain < 0.92, (next_level_same_brain,
                                                                            same_level_other_brain)


def test_huge_learning_rate_diverges_cleanly():
    train, test = tiny_datasets()
    metrics, predicted = scored_fit("cnn3", train, test, epochs=3, batch_size=5, lr=1e4, max_loss=100.0)
    assert metrics["diverged"] is True and metrics["diverged_at"] == 1
    assert metrics["test"]["accuracy"] is None and predicted is None
    check_model_evaluation(metrics)


def test_saved_model_predicts_bit_for_bit_the_same(tmp_path):
    train, test = tiny_datasets()
    model, result = mri_nets.fit("cnn_improved", train, test, seed=1, device=torch.device("cpu"), epochs=1,
                                 batch_size=10, lr=0.05)
    mri_nets.save_model(tmp_path, model, "cnn_improved", input_shape=(1, 40, 36), class_names=list(mri.CLASS_NAMES),
                        source="synthetic", options={"lr": 0.05}, result=result)
    loaded, spec = mri_nets.load_model(tmp_path, "mri_model@cnn_improved")
    x = torch.from_numpy(test.features).float().to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))
    assert spec["run"] == result.run_record() and spec["source"] == "synthetic"


def test_nearest_neighbour_takes_the_class_of_the_most_correlated_slice():
    from nnlab.models import mri_nearest

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (30, 9, 7), dtype=np.uint8)
    rows = mri_nearest.unit_rows(images, 2, 4)
    pooled = images[:, :8, :6].astype(np.float64).reshape(30, 4, 2, 3, 2).mean(axis=(2, 4)).reshape(30, -1)
    np.testing.assert_allclose(rows @ rows.T, np.corrcoef(pooled), atol=1e-5)
    labels = rng.integers(0, 4, 30)
    parts = [(rows[:20], labels[:20]), (rows[20:], labels[20:])]
    queries = mri_nearest.unit_rows(rng.integers(0, 256, (11, 9, 7), dtype=np.uint8), 2, 4)
    np.testing.assert_array_equal(mri_nearest.nearest_labels(queries, parts, 3),
                                  labels[np.argmax(queries @ rows.T, axis=1)])
    # Leave-one-out: the slices themselves, each looked up among the others.
    others = rows @ rows.T - 3 * np.eye(30)
    np.testing.assert_array_equal(mri_nearest.nearest_labels(rows[20:], parts, 4, themselves_from=20),
                                  labels[np.argmax(others[20:], axis=1)])
    assert np.all(mri_nearest.unit_rows(np.zeros((2, 4, 4), dtype=np.uint8), 2, 4) == 0)
