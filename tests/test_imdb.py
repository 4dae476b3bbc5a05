"""The three IMDB review sources (real sample tarball, built fixtures, broken ones), the
offline download failure, the synthetic generator and the classifier on a tiny set."""
from __future__ import annotations

import gzip
import io
import tarfile
import urllib.error

import numpy as np
import pytest

from nnlab.datasets import imdb
from nnlab.datasets.reviews_synthetic import synthetic_reviews
from nnlab.errors import DataError, ParamError
from stages.imdb_preprocess import SAMPLE_CHARS, samples
from tolerances import FLOAT32_EPS, assert_within, product_tolerance, sum_tolerance

from conftest import peak_memory_mib


def make_tarball(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


GOOD = {"aclImdb/train/pos/1_9.txt": b"Great film.", "aclImdb/train/neg/2_1.txt": b"Awful film.",
        "aclImdb/test/pos/3_8.txt": b"Lovely.", "aclImdb/test/neg/4_2.txt": b"Dull.",
        "aclImdb/train/unsup/5_0.txt": b"unlabelled"}


def test_real_sample_tarball(shared_data):
    frame = imdb.read_aclimdb(shared_data / "imdb/aclImdb_sample.tar.gz", download_dir="unused")
    counts = frame.groupby(["split", "sentiment"]).size().to_dict()
    assert counts == {("train", "positive"): 2500, ("train", "negative"): 2500,
                      ("test", "positive"): 500, ("test", "negative"): 500}


def test_tarball_and_folder_agree_and_skip_unsup(tmp_path):
    tarball = make_tarball(tmp_path / "a.tar.gz", GOOD)
    from_tar = imdb.read_aclimdb(tarball, download_dir="unused")
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path / "x", filter="data")
    from_folder = imdb.read_aclimdb(tmp_path / "x", download_dir="unused")
    assert len(from_tar) == 4 and from_tar.equals(from_folder)
    official = imdb.split_reviews(from_tar, how="official", test_fraction=0.2, seed=0, source="aclimdb")
    assert sorted(official["split"]) == ["test", "test", "train", "train"]


@pytest.mark.parametrize("member, data, message", [
    ("aclImdb/train/pos/7_9.txt", b"caf\xe9 bad bytes", r"member aclImdb/train/pos/7_9\.txt: not valid UTF-8"),
    ("aclImdb/train/neg/8_2.txt", b"  \n", r"member aclImdb/train/neg/8_2\.txt: empty review"),
])
def test_broken_tar_members_are_named(tmp_path, member, data, message):
    tarball = make_tarball(tmp_path / "b.tar.gz", {**GOOD, member: data})
    with pytest.raises(DataError, match=message):
        imdb.read_aclimdb_tarball(tarball)


def test_nul_byte_in_a_review_is_refused(tmp_path):
    tarball = make_tarball(tmp_path / "n.tar.gz", {**GOOD, "aclImdb/train/pos/9_9.txt": b"Good\0film"})
    with pytest.raises(DataError, match=r"member aclImdb/train/pos/9_9\.txt: NUL byte in the review \(character 4\)"):
        imdb.read_aclimdb_tarball(tarball)


def tar_gz_bomb(path, member: str, review_mib: int):
    """A tar.gz of one ``review_mib`` MiB review in a few hundred kB: gzip members concatenate, so one
    compressed MiB repeated makes the file without compressing the whole review."""
    info = tarfile.TarInfo(member)
    info.size = review_mib * 2**20   # a multiple of the 512-byte tar block: no padding
    path.write_bytes(gzip.compress(info.tobuf()) + gzip.compress(b"a" * 2**20) * review_mib
                     + gzip.compress(bytes(2 * tarfile.BLOCKSIZE)))
    return path


def test_review_longer_than_the_limit_is_refused_in_bounded_memory(tmp_path):
    """A 300 KB tar.gz with one 300 MB review peaked at 2.3 GB and was accepted."""
    tarball = tar_gz_bomb(tmp_path / "bomb.tar.gz", "aclImdb/train/pos/1_10.txt", 300)
    assert tarball.stat().st_size < 1_000_000
    error, peak = peak_memory_mib(f"from nnlab.datasets import imdb; imdb.read_aclimdb_tarball({str(tarball)!r})")
    assert error == (f"{tarball}: member aclImdb/train/pos/1_10.txt: review of {300 * 2**20} bytes, longer than "
                     f"data.imdb.max_review_bytes = {imdb.MAX_REVIEW_BYTES}")
    assert peak < 1024, f"peak {peak:.0f} MiB"


def test_review_limit_applies_to_every_source(tmp_path):
    folder = tmp_path / "aclImdb" / "train" / "pos"
    folder.mkdir(parents=True)
    (folder / "1_10.txt").write_text("Great " * 10)
    with pytest.raises(DataError, match=r"1_10\.txt: review of 60 bytes, longer than data.imdb.max_review_bytes = 50"):
        imdb.read_aclimdb(tmp_path, download_dir="unused", max_review_bytes=50)
    csv = write_csv(tmp_path, b"review,sentiment\nGood,positive\n" + b"Bad" * 20 + b",negative\n")
    with pytest.raises(DataError, match=r"reviews\.csv: row 3: review of more than 50 bytes"):
        imdb.read_reviews_csv(csv, max_review_bytes=50)


def test_tar_members_outside_aclimdb_are_passed_over_as_links_are(tmp_path):
    """`other/train/pos/99_9.txt` and `/tmp/aclImdb/train/pos/98_9.txt` used to become reviews."""
    outside = {"other/train/pos/99_9.txt": b"Not a review.", "/tmp/aclImdb/train/pos/98_9.txt": b"Nor this.",
               "aclImdb/../x/train/pos/97_9.txt": b"Nor this."}
    tarball = make_tarball(tmp_path / "o.tar.gz", {**GOOD, **outside})
    assert imdb.read_aclimdb_tarball(tarball).equals(imdb.read_aclimdb_tarball(make_tarball(tmp_path / "g.tar.gz", GOOD)))


def test_folder_reader_refuses_links_out_and_passes_over_folders(tmp_path):
    tarball = make_tarball(tmp_path / "a.tar.gz", GOOD)
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path / "x", filter="data")
    (tmp_path / "x/aclImdb/train/pos/1_10.txt").mkdir()   # was an IsADirectoryError
    assert len(imdb.read_aclimdb(tmp_path / "x", download_dir="unused")) == 4
    (tmp_path / "secret.txt").write_text("not a review")
    link = tmp_path / "x/aclImdb/train/neg/6_1.txt"
    link.symlink_to(tmp_path / "secret.txt")
    with pytest.raises(DataError, match=rf"{link}: a link to {tmp_path / 'secret.txt'}, outside"):
        imdb.read_aclimdb(tmp_path / "x", download_dir="unused")


def test_corrupt_tarball(tmp_path):
    good = make_tarball(tmp_path / "g.tar.gz", GOOD).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"cut\.tar\.gz: corrupt or not a tar archive"):
        imdb.read_aclimdb_tarball(tmp_path / "cut.tar.gz")


def write_csv(tmp_path, content: bytes):
    path = tmp_path / "reviews.csv"
    path.write_bytes(content)
    return path


def test_csv_review_longer_than_the_limit_is_refused_while_streaming(tmp_path):
    """One 200 MB review was refused at a 1.67 GB peak: the whole file was parsed before the limit applied."""
    for name, quoted in (("line.csv", False), ("lines.csv", True)):   # on one line, and over many
        path = tmp_path / name
        with open(path, "wb") as handle:
            handle.write(b'review,sentiment\nGood,positive\n' + (b'"' if quoted else b""))
            for _ in range(200):
                handle.write((b"ab\n" if quoted else b"abc") * 333_334)
            handle.write((b'"' if quoted else b"") + b",negative\n")
        error, peak = peak_memory_mib(f"from nnlab.datasets import imdb; imdb.read_reviews_csv({str(path)!r})")
        assert error == (f"{path}: row 3: review of more than {imdb.MAX_REVIEW_BYTES} bytes, longer than "
                         f"data.imdb.max_review_bytes = {imdb.MAX_REVIEW_BYTES}")
        assert peak < 600, f"{name}: peak {peak:.0f} MiB"   # 1,596 MiB before (the pytest process included)


def test_csv_source_that_is_a_folder_is_one_line(tmp_path):
    """Was an IsADirectoryError traceback."""
    with pytest.raises(DataError, match=rf"^{tmp_path}: cannot read \(Is a directory\): source csv needs a CSV file$"):
        imdb.read_reviews_csv(tmp_path)


def test_csv_reviews(tmp_path):
    frame = imdb.read_reviews_csv(write_csv(tmp_path, b'review,sentiment\n"Good, really",positive\nBad,Negative\n'))
    assert frame["sentiment"].tolist() == ["positive", "negative"]
    assert imdb.encode_labels(frame["sentiment"]).tolist() == [1, 0]


@pytest.mark.parametrize("content, message", [
    (b"text,sentiment\nGood,positive\n", r"missing column 'review'"),
    (b"review,sentiment\nGood,positive\nBad,meh\n", r"row 3: unknown sentiment 'meh'"),
    (b"review,sentiment\nGood,positive\n ,negative\n", r"row 3: empty review"),
    (b"review,sentiment\nGood,positive\nBad \xff,negative\n", r"line 3: not valid UTF-8"),
    (b"review,sentiment,sentiment\nGood,positive,negative\n", r"column 'sentiment' appears 2 times \(columns 2, 3\)"),
    (b"review,sentiment\nGood,positive\nBad\0,negative\n", r"row 3: NUL byte in the review"),
])
def test_broken_csv_is_refused_in_one_line(tmp_path, content, message):
    with pytest.raises(DataError, match=message) as error:
        imdb.read_reviews_csv(write_csv(tmp_path, content))
    assert "reviews.csv" in str(error.value) and "\n" not in str(error.value)


def test_official_split_needs_aclimdb():
    with pytest.raises(ParamError, match="official"):
        imdb.split_reviews(synthetic_reviews(20, seed=0), how="official", test_fraction=0.2, seed=0, source="csv")


def sentiments(positive: int, negative: int):
    import pandas as pd

    return pd.DataFrame({"review": [f"review {i}" for i in range(positive + negative)],
                         "sentiment": ["positive"] * positive + ["negative"] * negative})


@pytest.mark.parametrize("positive, negative, message", [
    (3, 2, "5 reviews at data.imdb.test_fraction = 0.2 give 4 train and 1 test reviews"),   # was a ValueError
    (2, 2, "4 reviews at data.imdb.test_fraction = 0.2 give 3 train and 1 test reviews"),
    (39, 1, "only one negative review (1 negative, 39 positive)"),                         # was a ValueError
    (40, 0, "no negative review (0 negative, 40 positive)"),                               # said "got 40"
])
def test_random_split_says_what_is_missing(positive, negative, message):
    with pytest.raises(DataError) as error:
        imdb.split_reviews(sentiments(positive, negative), how="random", test_fraction=0.2, seed=0, source="r.csv")
    assert str(error.value).startswith("r.csv: ") and message in str(error.value)


def test_official_split_needs_both_folders():
    frame = sentiments(2, 2).assign(split="train")
    with pytest.raises(DataError, match=r"x\.tar\.gz: no reviews in aclImdb/test/neg/: the official split needs"):
        imdb.split_reviews(frame, how="official", test_fraction=0.2, seed=0, source="x.tar.gz")


def test_random_split_is_stratified_seeded_and_keeps_the_reviews():
    frame = sentiments(10, 10).assign(stars=1)
    split = imdb.split_reviews(frame, how="random", test_fraction=0.2, seed=3, source="r.csv")
    assert list(split.columns) == ["review", "sentiment", "split"] and "split" not in frame.columns
    assert split[["review", "sentiment"]].equals(frame[["review", "sentiment"]])
    test = split[split["split"] == "test"]
    assert len(test) == 4 and (test["sentiment"] == "positive").sum() == 2 and set(split["split"]) == {"train", "test"}
    again = imdb.split_reviews(frame, how="random", test_fraction=0.2, seed=3, source="r.csv")
    other = imdb.split_reviews(frame, how="random", test_fraction=0.2, seed=4, source="r.csv")
    assert split.equals(again) and not split.equals(other)
    for seed in range(8):   # stratified for every seed (unstratified, seeds 6 and 7 draw 3 positive test reviews)
        drawn = imdb.split_reviews(frame, how="random", test_fraction=0.2, seed=seed, source="r.csv")
        assert (drawn.loc[drawn["split"] == "test", "sentiment"] == "positive").sum() == 2
    with pytest.raises(DataError, match="4 reviews at data.imdb.test_fraction = 0.8 give 0 train and 4 test reviews"):
        imdb.split_reviews(sentiments(2, 2), how="random", test_fraction=0.8, seed=0, source="r.csv")
    imdb.split_reviews(sentiments(2, 2), how="random", test_fraction=0.5, seed=0, source="r.csv")   # 2 and 2: enough


def test_official_split_is_aclimdbs_own():
    frame = sentiments(2, 2).assign(split=["train", "test", "test", "train"], stars=1)
    assert imdb.split_reviews(frame, how="official", test_fraction=0.9, seed=0, source="x.tar.gz").equals(
        frame[["review", "sentiment", "split"]])


def test_samples_are_cut_for_display():
    """plots/preprocess/samples.json is committed: a 50 MB review drawn there would be committed whole."""
    reviews = ["short and good", "long " * 100_000]
    shown = samples(reviews, reviews, np.array([1, 0]), seed=0)
    assert shown["positive"]["raw"] == "short and good"
    assert shown["negative"]["raw"] == "long " * (SAMPLE_CHARS // 5) + f" [... {500_000 - SAMPLE_CHARS} more characters]"


def test_download_fails_fast_offline(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(imdb.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"cannot download .*aclImdb_v1\.tar\.gz.*data\.imdb\.path") as error:
        imdb.download_aclimdb(tmp_path)
    assert "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_synthetic_reviews_are_noisy_balanced_and_seeded():
    frame = synthetic_reviews(400, seed=3)
    assert frame.equals(synthetic_reviews(400, seed=3))
    assert abs((frame["sentiment"] == "positive").mean() - 0.5) < 0.05
    lengths = frame["review"].str.split().str.len()
    assert lengths.min() >= 10 and lengths.max() >= 100
    text = " ".join(frame["review"])
    assert "<br /><br />" in text and any(c.isdigit() for c in text) and " not " in text


def test_classifier_learns_a_tiny_synthetic_set_and_zero_init_does_not():
    from nnlab.datasets.reviews_synthetic import POSITIVE
    from nnlab.models.sentiment import ClassifierConfig, run_metrics, train_classifier
    from nnlab.text import CleaningConfig, clean_texts, tfidf_features

    frame = imdb.split_reviews(synthetic_reviews(600, seed=1), how="random", test_fraction=0.25, seed=0,
                               source="synthetic")
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    config = CleaningConfig(stop_words="sklearn")
    X_train, X_test, vectorizer = tfidf_features(clean_texts(train["review"].tolist(), config),
                                                 clean_texts(test["review"].tolist(), config), 1000)
    assert set(POSITIVE) <= set(vectorizer.get_feature_names_out())
    y_train, y_test = imdb.encode_labels(train["sentiment"]).to_numpy(), imdb.encode_labels(test["sentiment"]).to_numpy()
    fast = ClassifierConfig(lr=0.5, epochs=5, batch_size=16)
    training = train_classifier(X_train, y_train, X_test, y_test, fast, seed=0, device="cpu", log=lambda s: None)
    metrics, probabilities = run_metrics(training, "synthetic", X_train, y_train, X_test, y_test, "cpu")
    assert metrics["test"]["accuracy"] > 0.8 and not metrics["diverged"] and metrics["trained"] == 5
    assert len(probabilities) == len(y_test)
    history = training.result.history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_accuracy"] == metrics["test"]["accuracy"]
    zeros = train_classifier(X_train, y_train, X_test, y_test, ClassifierConfig(lr=0.5, epochs=2, init="zeros"),
                             seed=0, device="cpu", log=lambda s: None)
    first_layer = zeros.model.layers[0].weight.detach()
    assert float(first_layer.abs().max()) == 0.0  # symmetry: nothing flows back to the hidden layers


@pytest.mark.numerics
def test_sparse_first_layer_is_nn_linear_on_the_dense_rows():
    """Values, gradients and an SGD step, with an empty row, an all-empty batch and duplicate entries."""
    import scipy.sparse as sp
    import torch

    from nnlab.models.sentiment import SparseLinear, SparseRows

    rng = np.random.default_rng(0)
    values = (rng.random((40, 30)) * (rng.random((40, 30)) < 0.1)).astype(np.float32)
    values[5] = values[9] = 0   # rows with no stored entries
    # a non-canonical CSR: row 0 stores column 0 twice, which scipy's toarray sums
    duplicated = sp.csr_matrix((np.array([1.0, 2.0, 3.0], dtype=np.float32), np.array([0, 0, 2]),
                                np.array([0, 2, 2, 3])), shape=(3, 30))
    X = sp.vstack([sp.csr_matrix(values), duplicated], format="csr")
    X.indices[-3:], X.data[-3:] = duplicated.indices, duplicated.data   # vstack may canonicalise; undo it
    assert not X.has_canonical_format
    rows = SparseRows(X, np.zeros(X.shape[0]))
    for chosen in (rng.choice(43, 7, replace=False), np.array([40, 5, 41, 42]), np.array([5, 9]),
                   np.arange(43)):
        torch.manual_seed(1)
        sparse_layer = SparseLinear(30, 4)
        torch.manual_seed(1)
        dense_layer = torch.nn.Linear(30, 4)
        torch.testing.assert_close(sparse_layer.weight.t(), dense_layer.weight, rtol=0, atol=0)
        batch, _ = rows[chosen]
        dense_rows = torch.from_numpy(X[chosen].toarray())
        out_sparse, out_dense = sparse_layer(batch), dense_layer(dense_rows)
        inputs, weight = dense_rows.numpy(), dense_layer.weight.detach().numpy().T
        # each output: 30 products and the bias
        assert_within(out_sparse.detach(), out_dense.detach(),
                      sum_tolerance(31, np.abs(inputs) @ np.abs(weight) + np.abs(dense_layer.bias.detach().numpy())),
                      "outputs")
        upstream = torch.from_numpy(rng.standard_normal(out_dense.shape).astype(np.float32))
        out_sparse.backward(upstream)
        out_dense.backward(upstream)
        assert sparse_layer.weight.grad.is_sparse
        # weight gradient: a sum over the batch rows of input x upstream; bias gradient: of upstream
        weight_grad_tolerance = product_tolerance(inputs.T, upstream.numpy()).T
        assert_within(sparse_layer.weight.grad.to_dense().t(), dense_layer.weight.grad, weight_grad_tolerance,
                      "weight gradient")
        assert_within(sparse_layer.bias.grad, dense_layer.bias.grad,
                      sum_tolerance(len(chosen), np.abs(upstream.numpy()).sum(axis=0)), "bias gradient")
        for layer in (sparse_layer, dense_layer):
            torch.optim.SGD(layer.parameters(), lr=0.5).step()
        # the step scales the gradient difference by lr, and each side rounds its update once
        stepped = dense_layer.weight.detach().numpy()
        assert_within(sparse_layer.weight.detach().t(), stepped,
                      0.5 * weight_grad_tolerance + FLOAT32_EPS * np.abs(stepped), "weights after a step")
