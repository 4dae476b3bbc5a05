"""Stage `preprocess`: cleaned review text to TF-IDF features (report 000 §2-§3).

Reads data/imdb/reviews.csv and params `preprocess` (+ `data.imdb.source`, recorded
with the fitted features); writes data/imdb/tfidf/ (X_train.npz, X_test.npz: sparse
TF-IDF fitted on the training split only; labels.npz: positive=1, negative=0),
models/imdb_tfidf/ (the cleaning settings and the fitted vocabulary and idf, which
`python -m nnlab.predict imdb` applies to new reviews) and
plots/preprocess/ (data_stats.json: class counts per split, the [0, 1] feature
check, the vocabulary size; class_counts.csv and .png, samples.json: one random
positive and one random negative training review, raw and cleaned, each cut
to SAMPLE_CHARS characters).
"""
from __future__ import annotations

import numpy as np

from nnlab import memory, plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import imdb
from nnlab.errors import DataError
from nnlab.io import StageOutputs
from nnlab.params import Section, load_params
from nnlab.runtime import numpy_rng
from nnlab.text import (NORMALISERS, STOP_WORD_SOURCES, CleaningConfig, TextFeatures, clean_texts, feature_range_check,
                        tfidf_features)

FEATURES = "data/imdb/tfidf"
FEATURES_MODEL = "models/imdb_tfidf"
PLOTS = "plots/preprocess"
SAMPLE_CHARS = 5000   # the longest real aclImdb review is about 14 kB; most are under 2 kB
#: Copies of the reviews table's text held at once: the frame, the cleaned texts, the tokens of a split.
TEXT_COPIES = 8


def cleaning_config(cfg: Section) -> CleaningConfig:
    nltk_data = cfg.optional_str("nltk_data")
    return CleaningConfig(
        lowercase=cfg.bool("lowercase"), strip_html=cfg.bool("strip_html"),
        remove_punctuation=cfg.bool("remove_punctuation"), numbers_to_words=cfg.bool("numbers_to_words"),
        stop_words=cfg.str("stop_words", choices=STOP_WORD_SOURCES), keep_negations=cfg.bool("keep_negations"),
        normalise=cfg.str("normalise", choices=NORMALISERS), nltk_data=nltk_data,
    )


def for_display(text: str) -> str:
    """``text``, cut to SAMPLE_CHARS characters: samples.json is committed, and a review may be megabytes."""
    if len(text) <= SAMPLE_CHARS:
        return text
    return f"{text[:SAMPLE_CHARS]} [... {len(text) - SAMPLE_CHARS} more characters]"


def samples(reviews, cleaned, labels, seed: int) -> dict:
    """One random positive and one random negative training review, raw and cleaned."""
    rng = numpy_rng(seed)
    shown = {}
    for name, value in (("positive", 1), ("negative", 0)):
        candidates = np.flatnonzero(labels == value)
        if len(candidates):
            i = int(rng.choice(candidates))
            shown[name] = {"raw": for_display(reviews[i]), "cleaned": for_display(cleaned[i])}
    return shown


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    source = params.section("data").section("imdb").str("source", choices=imdb.SOURCES)
    cfg = params.section("preprocess")
    config = cleaning_config(cfg)
    max_features = cfg.int("max_features", min=1)
    # Word pairs of 40,000 reviews make a vocabulary of millions before max_features prunes it; triples, more.
    ngram_max = cfg.int("ngram_max", min=1, max=2)
    sublinear_tf = cfg.bool("sublinear_tf")
    n_jobs = cfg.int("n_jobs", min=1)
    sample_seed = cfg.int("sample_seed", min=0)
    cfg.check_all_used()
    memory.check(memory.workers(cfg, "n_jobs", n_jobs),
                 memory.file_copies(imdb.REVIEWS_TABLE, TEXT_COPIES, "the reviews, cleaned and tokenised"))

    table = imdb.read_reviews_table(imdb.REVIEWS_TABLE)
    parts = {split: table[table["split"] == split] for split in ("train", "test")}
    for split, part in parts.items():
        if part.empty:
            raise DataError(f"{imdb.REVIEWS_TABLE}: no {split} reviews")
    labels = {split: imdb.encode_labels(part["sentiment"]).to_numpy() for split, part in parts.items()}
    raw = {split: part["review"].tolist() for split, part in parts.items()}
    cleaned = {split: clean_texts(texts, config, n_jobs=n_jobs) for split, texts in raw.items()}
    X_train, X_test, vectorizer = tfidf_features(cleaned["train"], cleaned["test"], max_features,
                                                 ngram_max=ngram_max, sublinear_tf=sublinear_tf)
    vocabulary = vectorizer.get_feature_names_out()

    counts = {split: {"negative": int((y == 0).sum()), "positive": int((y == 1).sum())}
              for split, y in labels.items()}
    stats = {"source": source, **{split: {"reviews": len(labels[split]), **counts[split]} for split in counts},
             "features": {"n_features": len(vocabulary), **feature_range_check(X_train, X_test)}}
    if not stats["features"]["in_unit_interval"]:
        raise DataError(f"TF-IDF features outside [0, 1]: {stats['features']}")
    shown = samples(raw["train"], cleaned["train"], labels["train"], sample_seed)
    count_rows = [{"split": split, **by_class} for split, by_class in counts.items()]   # a column per class
    figure = plotting.bar_chart(counts, title=f"IMDB reviews per class: {imdb.describe(source, len(table))}",
                                ylabel="reviews")

    with StageOutputs() as out:
        features = out.directory(FEATURES)
        imdb.save_features(features, X_train, X_test, labels["train"], labels["test"])
        TextFeatures(config, vectorizer).save(out.directory(FEATURES_MODEL), source)
        out.json(f"{PLOTS}/data_stats.json", stats)
        out.csv(f"{PLOTS}/class_counts.csv", count_rows)
        out.figure(f"{PLOTS}/class_counts.png", figure)
        out.json(f"{PLOTS}/samples.json", shown)
    for name, sample in shown.items():
        print(f"{name} review (raw): {sample['raw'][:300]}\n{name} review (cleaned): {sample['cleaned'][:300]}")
    print(f"preprocess: {X_train.shape[0]} train, {X_test.shape[0]} test, {len(vocabulary)} TF-IDF features"
          f" in [{stats['features']['min']:.3g}, {stats['features']['max']:.3g}]")


if __name__ == "__main__":
    run(main)
