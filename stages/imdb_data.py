"""Stage `imdb_data`: the labelled movie reviews, from the source `data.imdb.source` names.

Reads params `data.imdb` (source embedded: the aclImdb subset committed as
data/imdb/embedded/aclImdb_subset.csv.xz; aclimdb or csv: the file or folder at
`data.imdb.path`, and aclimdb with `path: null` downloads the tarball into
`data.imdb.download_dir`); writes data/imdb/reviews.csv (columns review,
sentiment, split) and plots/imdb_data/data_stats.json (the source, what it is
and the counts: facts about the data, not metrics).
"""
from __future__ import annotations

import pandas as pd

from nnlab import memory
from nnlab.cli import run, stage_parser
from nnlab.datasets import imdb
from nnlab.datasets.reviews_synthetic import synthetic_reviews
from nnlab.errors import ParamError
from nnlab.io import StageOutputs
from nnlab.params import Section, load_params

SPLITS = ("random", "official")
#: Characters of a synthetic sentence, about, and the copies a review has on its way to the CSV
#: (the generated string, the frame, the split's frame, the CSV text).
SENTENCE_CHARS, REVIEW_COPIES = 70, 6
#: An invented word in the vocabulary's set, list and sorted list.
WORD_BYTES = 200
STATS = "plots/imdb_data/data_stats.json"


def synthetic_options(cfg: Section) -> dict:
    options = dict(
        n_reviews=cfg.int("n_reviews", min=4),
        label_noise=cfg.float("label_noise", min=0.0, max=0.5),
        min_sentences=cfg.int("min_sentences", min=1),
        max_sentences=cfg.int("max_sentences", min=cfg.int("min_sentences", min=1)),
        vocabulary_size=cfg.int("vocabulary_size", min=1),
    )
    cfg.check_all_used()
    return options


def load_reviews(cfg: Section) -> tuple[str, pd.DataFrame]:
    """The source's name and its reviews, split into train and test."""
    source = cfg.str("source", choices=imdb.SOURCES)
    path = cfg.optional_str("path")
    download_dir = cfg.str("download_dir")
    how = cfg.str("split", choices=SPLITS)
    test_fraction = cfg.float("test_fraction", min=0.01, max=0.99)
    seed = cfg.int("seed", min=0)
    max_review_bytes = cfg.int("max_review_bytes", min=1)
    synthetic_cfg = cfg.section("synthetic")
    synthetic = synthetic_options(synthetic_cfg)
    cfg.check_all_used()
    if source == "embedded":
        frame = imdb.read_embedded()
    elif source == "synthetic":
        sentences = (synthetic["min_sentences"] + synthetic["max_sentences"]) / 2
        memory.check(memory.array(synthetic_cfg, "n_reviews", (synthetic["n_reviews"], sentences * SENTENCE_CHARS), 1,
                                  f"{synthetic['n_reviews']:,} reviews of {sentences:,.0f} sentences on average",
                                  copies=REVIEW_COPIES),
                     memory.array(synthetic_cfg, "vocabulary_size", (synthetic["vocabulary_size"],), WORD_BYTES,
                                  f"{synthetic['vocabulary_size']:,} invented words"))
        frame = synthetic_reviews(seed=seed, **synthetic)
    elif source == "aclimdb":
        frame = imdb.read_aclimdb(path, download_dir, max_review_bytes)
    else:
        if path is None:
            raise ParamError("data.imdb.path is null: source csv needs the path of a review,sentiment file")
        frame = imdb.read_reviews_csv(path, max_review_bytes)
    named = path if source in ("aclimdb", "csv") and path is not None else source   # what the split's messages name
    return source, imdb.split_reviews(frame, how=how, test_fraction=test_fraction, seed=seed, source=named)


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    source, reviews = load_reviews(load_params(args.params).section("data").section("imdb"))
    counts = reviews.groupby(["split", "sentiment"]).size()
    stats = {"source": source, "description": imdb.describe(source, len(reviews)),
             **{split: {"reviews": int(counts[split].sum()), **counts[split].to_dict()}
                for split in ("train", "test")}}
    with StageOutputs() as out:
        out.csv(imdb.REVIEWS_TABLE, reviews)
        out.json(STATS, stats)
    print(f"imdb_data: {stats['description']}: {stats['train']['reviews']} train, {stats['test']['reviews']} test")


if __name__ == "__main__":
    run(main)
