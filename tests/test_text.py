"""Each cleaning step of nnlab.text on hand-made strings, the stop-word and stemming choices,
and TF-IDF fitted on the training split only."""
from __future__ import annotations

import dataclasses

import pytest

from nnlab.errors import DataError
from nnlab.text import CleaningConfig, Cleaner, clean_texts, feature_range_check, number_to_words, tfidf_features

OFF = CleaningConfig(lowercase=False, strip_html=False, remove_punctuation=False, numbers_to_words=False,
                     stop_words="none", normalise="none")


def clean(text: str, **switches) -> str:
    return Cleaner(dataclasses.replace(OFF, **switches))(text)


def test_all_steps_off_only_normalises_whitespace():
    assert clean("A <b>Great</b>  film, 10/10!") == "A <b>Great</b> film, 10/10!"


def test_each_step_alone():
    assert clean("Good<br /><br />Film &amp; cast", strip_html=True) == "Good Film & cast"
    assert clean("GREAT Film", lowercase=True) == "great film"
    assert clean("don't (really)!\\n\tok...", remove_punctuation=True) == "dont really ok"
    assert clean("8/10 in 1,500 takes", numbers_to_words=True) == "eight / ten in one thousand five hundred takes"


@pytest.mark.parametrize("n, words", [(0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"),
                                      (105, "one hundred five"), (1999, "one thousand nine hundred ninety nine"),
                                      (2_000_000, "two million")])
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_sklearn_stop_words_keep_negations_by_choice():
    text = "this was not a good film and i did not like it"
    kept = clean(text, stop_words="sklearn", keep_negations=True)
    assert kept.split() == ["not", "good", "film", "did", "not", "like"]
    assert "not" not in clean(text, stop_words="sklearn", keep_negations=False).split()


def test_stemmers_work_offline():
    assert clean("movies running", normalise="porter") == "movi run"
    assert clean("movies running", normalise="snowball") == "movi run"


def test_nltk_stop_words_from_the_shared_corpus(shared_data):
    config = dataclasses.replace(OFF, stop_words="nltk", remove_punctuation=True, lowercase=True,
                                 nltk_data=str(shared_data / "nltk_data"))
    cleaner = Cleaner(config)
    assert len(cleaner.stop_words) > 100
    assert cleaner("The film wasn't good, it isn't") == "film wasnt good isnt"


def test_missing_nltk_corpus_fails_with_how_to_get_it(tmp_path, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(DataError, match=r"nltk\.downloader stopwords"):
        Cleaner(dataclasses.replace(OFF, stop_words="nltk"))
    with pytest.raises(DataError, match=r"nltk\.downloader wordnet"):
        Cleaner(dataclasses.replace(OFF, normalise="wordnet"))
    with pytest.raises(DataError):
        clean_texts(["a review"], dataclasses.replace(OFF, stop_words="nltk"))


def test_parallel_cleaning_matches_serial():
    texts = [f"Review {i}: <br />NOT bad at all!" for i in range(6)]
    config = CleaningConfig(stop_words="sklearn", normalise="porter")
    assert clean_texts(texts, config, n_jobs=2, chunk_size=3) == clean_texts(texts, config, n_jobs=1)


def test_tfidf_is_fitted_on_train_only():
    X_train, X_test, vectorizer = tfidf_features(["good film", "bad film"], ["testonlyword film"], 100)
    vocabulary = list(vectorizer.get_feature_names_out())
    assert "testonlyword" not in vocabulary
    assert X_train.shape[1] == X_test.shape[1] == len(vocabulary)
    assert feature_range_check(X_train, X_test)["in_unit_interval"]


def test_word_pairs_and_sublinear_counts_survive_saving_the_features(tmp_path):
    """A saved TF-IDF of word pairs, read back as predict reads it, makes the same features (a reader that
    dropped the pairs would silently score new reviews on single words)."""
    from nnlab.text import TextFeatures

    config = dataclasses.replace(OFF, lowercase=True)
    train = ["not good not good not good", "good film", "bad film not bad"]
    X_train, _, vectorizer = tfidf_features(train, ["x"], 100, ngram_max=2, sublinear_tf=True)
    assert {"not good", "good film"} <= set(vectorizer.get_feature_names_out())
    TextFeatures(config, vectorizer).save(tmp_path, "embedded")
    again = TextFeatures.load(tmp_path)
    assert (again(train) != X_train).nnz == 0
    plain, _, _ = tfidf_features(train, ["x"], 100, ngram_max=2)
    assert (plain != X_train).nnz > 0   # sublinear counts weigh the repeated pair less
