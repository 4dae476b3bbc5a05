"""The embedded IMDB default: the committed aclImdb subset (balanced, checked by sha256, the real
files unchanged), its seeded draw, and the README's predict examples on the models the default
params train on it."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import ROOT, SHARED_DATA, default_params, deep_merge, run_stage, stage_python, venv_env
from nnlab.datasets import imdb, imdb_subset
from nnlab.errors import DataError
from test_predict import readme_predict_output

README_EXAMPLES = {"What a waste of two hours.": "negative", "Loved every minute": "positive"}


@pytest.fixture(scope="module")
def embedded() -> pd.DataFrame:
    return imdb.read_embedded(ROOT / imdb.EMBEDDED)


def test_the_subset_is_balanced_and_each_review_once(embedded):
    assert list(embedded.columns) == imdb_subset.COLUMNS
    assert embedded["sentiment"].value_counts().to_dict() == {"negative": 2000, "positive": 2000}
    # aclImdb's rule: a negative review has at most 4 stars, a positive one at least 7.
    assert embedded.loc[embedded["sentiment"] == "negative", "rating"].between(1, 4).all()
    assert embedded.loc[embedded["sentiment"] == "positive", "rating"].between(7, 10).all()
    assert not embedded.duplicated(["sentiment", "id"]).any() and not embedded["review"].duplicated().any()
    assert (ROOT / imdb.EMBEDDED).stat().st_size <= 2_000_000


SAMPLE = SHARED_DATA / "imdb/aclImdb_sample.tar.gz"


@pytest.fixture(scope="module")
def sample_train() -> pd.DataFrame:
    """The train reviews of ../shared/data's aclImdb sample, read once for the tests that need it."""
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} is absent")
    frame = imdb.read_aclimdb(SAMPLE, download_dir="unused")
    return frame[frame["split"] == "train"]


def test_the_reviews_are_the_aclimdb_train_files_unchanged(embedded, sample_train):
    """The 5,000 train reviews of ../shared/data's sample share about 800 with the subset: the same
    text under the same id, sentiment and rating."""
    both = embedded.merge(sample_train, on=["sentiment", "id"], suffixes=("", "_file"))
    assert len(both) > 500
    assert (both["review"] == both["review_file"]).all() and (both["rating"] == both["stars"]).all()


def test_the_draw_is_seeded_balanced_and_regenerates_its_bytes(sample_train, tmp_path, capsys):
    out = tmp_path / "subset.csv.xz"
    imdb_subset.main([str(SAMPLE), "--reviews", "40",
                      "--out", str(out)])
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert capsys.readouterr().out.strip().endswith(f"sha256 {digest}")
    drawn = imdb.read_embedded(out, digest)
    assert drawn["sentiment"].value_counts().to_dict() == {"negative": 20, "positive": 20}
    assert drawn.equals(imdb_subset.draw_subset(sample_train, 40, imdb_subset.SEED))
    assert imdb_subset.compressed_csv(drawn) == out.read_bytes()
    assert not imdb_subset.draw_subset(sample_train, 40, seed=1).equals(drawn)


def test_repeated_texts_and_test_reviews_are_never_drawn():
    rows = [{"review": f"text {i}", "sentiment": ("positive", "negative")[i % 2], "split": "train", "id": i,
             "stars": (9, 2)[i % 2]} for i in range(6)]
    rows += [{**rows[0], "id": 50}, {**rows[1], "id": 51, "split": "test", "review": "test only"}]
    drawn = imdb_subset.draw_subset(pd.DataFrame(rows), 4, seed=0)
    assert set(drawn.loc[drawn["sentiment"] == "positive", "review"]) == {"text 2", "text 4"}
    assert set(drawn.loc[drawn["sentiment"] == "negative", "review"]) < {"text 1", "text 3", "text 5"}
    with pytest.raises(DataError, match="^2 positive train reviews with a unique text, fewer than the 3 to draw$"):
        imdb_subset.draw_subset(pd.DataFrame(rows), 6, seed=0)


def test_a_changed_or_missing_file_is_refused_in_one_line(tmp_path):
    changed = tmp_path / "data/imdb/embedded/aclImdb_subset.csv.xz"
    changed.parent.mkdir(parents=True)
    raw = bytearray((ROOT / imdb.EMBEDDED).read_bytes())
    raw[-100] ^= 1
    changed.write_bytes(bytes(raw))
    result = run_stage("imdb_data", default_params(), tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {imdb.EMBEDDED}: sha256 {hashlib.sha256(raw).hexdigest()}, expected {imdb.EMBEDDED_SHA256}: "
        f"not the committed subset; restore the committed file with `git checkout -- {imdb.EMBEDDED}`"]
    assert not (tmp_path / imdb.REVIEWS_TABLE).exists()
    changed.unlink()
    with pytest.raises(DataError, match=r"aclImdb_subset\.csv\.xz: not found: restore the committed file with"):
        imdb.read_embedded(changed)


def test_readme_examples_get_the_right_sentiment_from_the_default_models(tmp_path):
    """The README's `python -m nnlab.predict imdb` examples, on the features and the logistic regression
    that the default params fit on the embedded reviews (seconds). The report's SGD net
    (imdb_train) stays at chance on 3,200 reviews and imdb_tuned is a coin flip on "Loved every
    minute" (docs/studies/000.md), so the linear model is predict's default for IMDB."""
    (tmp_path / imdb.EMBEDDED).parent.mkdir(parents=True)
    shutil.copy(ROOT / imdb.EMBEDDED, tmp_path / imdb.EMBEDDED)
    params = deep_merge(default_params(), {"preprocess": {"n_jobs": 1}})   # the same features, one process
    for stage in ("imdb_data", "imdb_preprocess", "imdb_logreg"):
        result = run_stage(stage, params, tmp_path)
        assert result.returncode == 0, result.stderr
    result = subprocess.run([stage_python(), "-m", "nnlab.predict", "imdb", "--json", *README_EXAMPLES], cwd=tmp_path,
                            env={**venv_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert {answer["input"]: answer["label"] for answer in answers} == README_EXAMPLES
    assert {answer["model"] for answer in answers} == {"imdb_logreg"} and not any(a["synthetic"] for a in answers)
    # README.md shows these very lines: the default pipeline's models are the same bytes anywhere.
    plain = subprocess.run([stage_python(), "-m", "nnlab.predict", "imdb", *README_EXAMPLES], cwd=tmp_path,
                           env={**venv_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    shown = [line for line in readme_predict_output() if line.split("\t")[-1].startswith("[imdb_")]
    assert plain.stdout.splitlines() == shown
