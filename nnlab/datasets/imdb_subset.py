"""Draw the embedded IMDB subset from aclImdb's train split:
``python -m nnlab.datasets.imdb_subset PATH`` (PATH: ``aclImdb_v1.tar.gz`` or its extracted folder).

It keeps the train reviews whose text occurs once in the split (aclImdb repeats
some texts, and a repeat on both sides of our random train/test split would
leak), draws half of the reviews from the positive and half from the negative
ones with numpy's ``default_rng(seed)`` (each sentiment's reviews in id order
first), and writes them in that order to :data:`nnlab.datasets.imdb.EMBEDDED`: an
xz-compressed CSV with the columns ``id, rating, sentiment, review`` (the id and
the rating of 1 to 10 stars name the file ``train/<pos|neg>/<id>_<rating>.txt``;
the review is its text, unchanged). The same input and options write the same
bytes; it prints their sha256, which the loader checks
(:data:`nnlab.datasets.imdb.EMBEDDED_SHA256`). Provenance and terms:
``data/imdb/embedded/README.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import lzma
import sys

import numpy as np
import pandas as pd

from nnlab.datasets import imdb
from nnlab.errors import DataError, NnlabError
from nnlab.io import replace_file

N_REVIEWS = 4000
SEED = 42
COLUMNS = ["id", "rating", "sentiment", "review"]


def draw_subset(frame: pd.DataFrame, n_reviews: int, seed: int) -> pd.DataFrame:
    """``n_reviews`` train reviews of an aclImdb frame (:func:`nnlab.datasets.imdb.read_aclimdb`),
    half of each sentiment, among the texts that occur once in the train split."""
    train = frame[frame["split"] == "train"]
    train = train[~train["review"].duplicated(keep=False)]
    rng = np.random.default_rng(seed)
    drawn = []
    for sentiment in imdb.SENTIMENTS:
        candidates = train[train["sentiment"] == sentiment].sort_values("id")
        if len(candidates) < n_reviews // 2:
            raise DataError(f"{len(candidates)} {sentiment} train reviews with a unique text, "
                            f"fewer than the {n_reviews // 2} to draw")
        rows = np.sort(rng.choice(len(candidates), size=n_reviews // 2, replace=False))
        drawn.append(candidates.iloc[rows])
    subset = pd.concat(drawn).rename(columns={"stars": "rating"})
    return subset[COLUMNS].reset_index(drop=True)


def compressed_csv(subset: pd.DataFrame) -> bytes:
    # xz, unlike gzip, stores no time stamp: the same subset is the same bytes.
    return lzma.compress(subset.to_csv(index=False, lineterminator="\n").encode("utf-8"),
                         preset=9 | lzma.PRESET_EXTREME)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nnlab.datasets.imdb_subset",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="aclImdb_v1.tar.gz, or the folder it extracts to")
    parser.add_argument("--reviews", type=int, default=N_REVIEWS, help=f"how many, an even number "
                        f"(default {N_REVIEWS})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"numpy's seed for the draw (default {SEED})")
    parser.add_argument("--out", default=imdb.EMBEDDED, help=f"where to write (default {imdb.EMBEDDED})")
    args = parser.parse_args(argv)
    if args.reviews < 2 or args.reviews % 2:
        parser.error(f"--reviews {args.reviews}: an even number, at least 2")
    try:
        subset = draw_subset(imdb.read_aclimdb(args.path, download_dir="."), args.reviews, args.seed)
        data = compressed_csv(subset)
        replace_file(args.out, lambda handle: handle.write(data))
    except NnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"{args.out}: {len(subset)} reviews, {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
