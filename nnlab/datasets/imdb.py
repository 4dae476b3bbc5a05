"""Movie reviews labelled positive/negative, from one of four sources (report 000 §2).

- ``embedded``: 4,000 real reviews of aclImdb's train split, committed to git
  (:data:`EMBEDDED`, drawn by :mod:`nnlab.datasets.imdb_subset`, checked against
  :data:`EMBEDDED_SHA256`): the offline default;
- ``synthetic``: :mod:`nnlab.datasets.reviews_synthetic`, generated reviews;
- ``aclimdb``: the Stanford Large Movie Review Dataset v1, from a local tarball,
  its extracted folder, or downloaded with its pinned MD5;
- ``csv``: a file with columns ``review,sentiment`` (the Kaggle form).

Every loader returns a frame with columns ``review``, ``sentiment``
(``positive``/``negative``) and, for aclImdb, ``split`` (the official
``train``/``test``). Bad input raises :class:`~nnlab.errors.DataError` naming
the file and the row or tar member: besides format errors, a review longer
than ``max_review_bytes`` (checked before it is read, so a small tar.gz cannot
expand into memory), a NUL byte, a duplicated column, a symlink out of an
extracted folder, and inputs a split cannot be drawn from.
"""
from __future__ import annotations

import hashlib
import math
import re
import socket
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pandas as pd

from nnlab.errors import DataError, ParamError

SOURCES = ("embedded", "synthetic", "aclimdb", "csv")
EMBEDDED = "data/imdb/embedded/aclImdb_subset.csv.xz"
EMBEDDED_SHA256 = "60bf8aa66e73131dfd5e870d2888db7f03be9d919892aace6b1badf7e678d518"
ACLIMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ACLIMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
ACLIMDB_BYTES = 84_125_825
SENTIMENTS = ("negative", "positive")   # index = encoded label
COLUMNS = ("review", "sentiment")
REVIEWS_TABLE = "data/imdb/reviews.csv"   # written by the imdb_data stage
# The longest aclImdb review is about 14 kB; params.yaml's data.imdb.max_review_bytes overrides this.
MAX_REVIEW_BYTES = 1_000_000

# aclImdb/{train,test}/{pos,neg}/<id>_<stars>.txt ; "unsup" and the rest are skipped.
_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
# A tarball's reviews are under its aclImdb/ folder; a member elsewhere (other/train/..., /tmp/aclImdb/...)
# is passed over, as links are.
_TAR_MEMBER = re.compile(r"(?:\./)?aclImdb/(?:train|test)/(?:pos|neg)/\d+_\d+\.txt")
_DIR_SENTIMENT = {"pos": "positive", "neg": "negative"}
_SENTIMENT_DIR = {sentiment: folder for folder, sentiment in _DIR_SENTIMENT.items()}


# pragma: no mutate start (beyond `make mutate`, which covers the splits: CONTRIBUTING.md)
def encode_labels(sentiment: pd.Series) -> "pd.Series":
    """positive -> 1, negative -> 0."""
    return (sentiment == "positive").astype("int64")


def _decode(raw: bytes, where: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise DataError(f"{where}: empty review")
    if "\0" in text:
        raise DataError(f"{where}: NUL byte in the review (character {text.index(chr(0))})")
    return text


def _too_long(size: int | str, where: str, limit: int) -> DataError:
    return DataError(f"{where}: review of {size} bytes, longer than data.imdb.max_review_bytes = {limit}")


def _review_row(name: str, text: str) -> dict | None:
    match = _MEMBER.search(name)
    if match is None:
        return None
    split, polarity, review_id, stars = match.groups()
    return {"review": text, "sentiment": _DIR_SENTIMENT[polarity], "split": split,
            "id": int(review_id), "stars": int(stars)}


def _finish_aclimdb(rows: list[dict], source: Path) -> pd.DataFrame:
    if not rows:
        raise DataError(f"{source}: no aclImdb/{{train,test}}/{{pos,neg}}/<id>_<stars>.txt reviews found")
    frame = pd.DataFrame(rows).sort_values(["split", "sentiment", "id"], ascending=[False, True, True])
    return frame.reset_index(drop=True)


def read_aclimdb_tarball(path: str | Path, max_review_bytes: int = MAX_REVIEW_BYTES) -> pd.DataFrame:
    """Reviews of an ``aclImdb_v1.tar.gz``-style tarball, read in one pass over its members."""
    path = Path(path)
    rows: list[dict] = []
    member_name = "(start of archive)"
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                member_name = member.name
                if not (member.isfile() and _TAR_MEMBER.fullmatch(member.name)):
                    continue
                where = f"{path}: member {member.name}"
                if member.size > max_review_bytes:
                    raise _too_long(member.size, where, max_review_bytes)
                raw = archive.extractfile(member).read()
                rows.append(_review_row(member.name, _decode(raw, where)))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        # tarfile's "could not be opened" message lists each method tried on its own line.
        reason = " ".join(str(exc).split())
        raise DataError(f"{path}: corrupt or not a tar archive (at member {member_name}: {reason})") from None
    return _finish_aclimdb(rows, path)


def read_aclimdb_folder(path: str | Path, max_review_bytes: int = MAX_REVIEW_BYTES) -> pd.DataFrame:
    """Reviews of an extracted aclImdb folder (the ``aclImdb`` folder or its parent).

    Like the tarball reader, it reads only regular files (a folder named like
    a review is passed over) and nothing outside the folder: a symlink that
    leads out of it is refused.
    """
    path = Path(path)
    root = path if (path / "train").is_dir() or (path / "test").is_dir() else path / "aclImdb"
    rows = []
    for file in sorted(root.glob("t*/*/*.txt")):
        relative = file.relative_to(root).as_posix()
        if not _MEMBER.search(relative):
            continue
        target = file.resolve()
        if not target.is_relative_to(root.resolve()):
            raise DataError(f"{file}: a link to {target}, outside {root}")
        if not target.is_file():
            continue
        size = target.stat().st_size
        if size > max_review_bytes:
            raise _too_long(size, str(file), max_review_bytes)
        rows.append(_review_row(relative, _decode(target.read_bytes(), str(file))))
    return _finish_aclimdb(rows, path)


def read_embedded(path: str | Path = EMBEDDED, sha256: str = EMBEDDED_SHA256) -> pd.DataFrame:
    """The committed aclImdb subset (columns ``id, rating, sentiment, review``), once its bytes
    have the sha256 it was committed with."""
    import io
    import lzma

    path = Path(path)
    restore = f"restore the committed file with `git checkout -- {path}`"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: not found: {restore}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise DataError(f"{path}: sha256 {digest}, expected {sha256}: not the committed subset; {restore}")
    return pd.read_csv(io.BytesIO(lzma.decompress(raw)), dtype={"review": str, "sentiment": str},
                       keep_default_na=False)


def describe(source: str, n_reviews: int) -> str:
    """What ``n_reviews`` reviews from ``source`` are, as figure titles and data stats name them."""
    return {"embedded": f"real IMDB reviews, {n_reviews:,}-review subset",
            "synthetic": f"SYNTHETIC reviews (not the IMDB data), {n_reviews:,}",
            "aclimdb": f"real IMDB reviews (aclImdb), {n_reviews:,}",
            "csv": f"reviews of a CSV file, {n_reviews:,}"}[source]


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_aclimdb(directory: str | Path, *, url: str = ACLIMDB_URL, timeout: float = 10.0) -> Path:
    """``directory/aclImdb_v1.tar.gz``, downloaded unless already there with the pinned MD5."""
    from tqdm import tqdm

    target = Path(directory).expanduser() / "aclImdb_v1.tar.gz"
    if target.is_file() and _md5(target) == ACLIMDB_MD5:
        return target
    instead = ("download it by other means and set data.imdb.path to the tarball or its "
               "extracted folder, or use data.imdb.source: synthetic")
    partial = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            with tqdm(total=ACLIMDB_BYTES, unit="B", unit_scale=True, desc="aclImdb", disable=None) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, socket.timeout, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot download {url} ({reason}): {instead}") from None
    digest = _md5(partial)
    if digest != ACLIMDB_MD5:
        partial.unlink()
        raise DataError(f"{url}: downloaded file has MD5 {digest}, expected {ACLIMDB_MD5}: {instead}")
    partial.replace(target)
    return target


def read_aclimdb(path: str | Path | None, download_dir: str | Path,
                 max_review_bytes: int = MAX_REVIEW_BYTES) -> pd.DataFrame:
    """From a tarball or folder at ``path``; ``None`` downloads into ``download_dir``."""
    if path is None:
        path = download_aclimdb(download_dir)
    path = Path(path).expanduser()
    if path.is_dir():
        return read_aclimdb_folder(path, max_review_bytes)
    return read_aclimdb_tarball(path, max_review_bytes)


def _row(mask: pd.Series) -> int:
    """The first row where ``mask`` holds, numbered as a spreadsheet shows it (the header is row 1)."""
    return int(mask.to_numpy().argmax()) + 2


class _LineTooLong(Exception):
    """A line of a CSV longer than any row of reviews within the limit can be."""


def _csv_lines(handle, path: Path, cap):
    """The lines of a CSV file opened in binary, decoded; a line longer than ``cap()`` bytes raises
    :class:`_LineTooLong` before more of it is read."""
    offset, number = 0, 0
    while True:
        parts, size = [], 0
        while not parts or not parts[-1].endswith(b"\n"):
            piece = handle.readline(1 << 20)
            if not piece:
                break
            parts.append(piece)
            size += len(piece)
            if size > cap():
                raise _LineTooLong
        if not parts:
            return
        raw = b"".join(parts)
        number += 1
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: line {number}: not valid UTF-8 (byte {offset + exc.start})") from None
        offset += size


def _check_review_sizes(path: Path, max_review_bytes: int) -> None:
    """Refuse a review longer than ``max_review_bytes`` while streaming the file, so that the memory a
    refused file takes is bounded by the limit, not by the file. A character takes at least a byte,
    so no field may have more characters than the limit has bytes, and no line more bytes than a
    row of such fields (4 bytes a character, quotes doubled)."""
    import csv

    header: list[str] = []
    review_column = None   # its place in the header, once read
    row = 0
    previous = csv.field_size_limit(max_review_bytes)
    try:
        with open(path, "rb") as handle:
            lines = _csv_lines(handle, path, lambda: 8 * max_review_bytes * max(len(header), 2) + 2**16)
            try:
                for record in csv.reader(lines):
                    if not record:
                        continue   # a blank line, which pandas passes over too
                    row += 1
                    if row == 1:
                        header = record
                        review_column = header.index("review") if "review" in header else None
                    elif review_column is not None and review_column < len(record):
                        size = len(record[review_column].encode("utf-8"))
                        if size > max_review_bytes:
                            raise _too_long(size, f"{path}: row {row}", max_review_bytes)
            except _LineTooLong:
                raise _too_long(f"more than {max_review_bytes}", f"{path}: row {row + 1}", max_review_bytes) from None
            except csv.Error as exc:
                if "field limit" in str(exc):
                    raise _too_long(f"more than {max_review_bytes}", f"{path}: row {row + 1}",
                                    max_review_bytes) from None
                # anything else is a CSV pandas refuses below, with its own words
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc}): source csv needs a CSV file") from None
    finally:
        csv.field_size_limit(previous)


def read_reviews_csv(path: str | Path, max_review_bytes: int = MAX_REVIEW_BYTES) -> pd.DataFrame:
    """A CSV with columns ``review,sentiment`` (sentiment: positive or negative)."""
    import csv
    import io

    path = Path(path)
    _check_review_sizes(path, max_review_bytes)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: not valid UTF-8 (byte {exc.start})") from None
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        header = next(csv.reader(io.StringIO(text)), [])   # as written: pandas renames a repeated column
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).strip()})") from None
    for column in COLUMNS:
        if column not in frame.columns:
            raise DataError(f"{path}: missing column {column!r} (found: {', '.join(map(str, frame.columns))})")
        if header.count(column) > 1:
            positions = [str(i + 1) for i, name in enumerate(header) if name == column]
            raise DataError(f"{path}: column {column!r} appears {len(positions)} times (columns "
                            f"{', '.join(positions)}): keep one")
    frame = frame[list(COLUMNS)].copy()
    frame["sentiment"] = frame["sentiment"].str.strip().str.lower()
    unknown = ~frame["sentiment"].isin(SENTIMENTS)
    if unknown.any():
        raise DataError(f"{path}: row {_row(unknown)}: unknown sentiment {frame['sentiment'][unknown].iloc[0]!r}"
                        f" (expected positive or negative)")
    empty = frame["review"].str.strip() == ""
    if empty.any():
        raise DataError(f"{path}: row {_row(empty)}: empty review")
    with_nul = frame["review"].str.contains("\0", regex=False)
    if with_nul.any():
        raise DataError(f"{path}: row {_row(with_nul)}: NUL byte in the review")
    if frame.empty:
        raise DataError(f"{path}: no reviews")
    return frame.reset_index(drop=True)


# pragma: no mutate end
def split_reviews(frame: pd.DataFrame, *, how: str, test_fraction: float, seed: int,
                  source: str) -> pd.DataFrame:
    """Add the ``split`` column: aclImdb's ``official`` one, or a stratified ``random`` one."""
    from sklearn.model_selection import train_test_split

    if how == "official":
        if "split" not in frame.columns:
            raise ParamError(f"data.imdb.split = 'official': only the aclimdb source has an official"
                             f" train/test split (source here: {source}); use random")
        for split in ("train", "test"):
            sentiments = set(frame.loc[frame["split"] == split, "sentiment"])
            for sentiment in SENTIMENTS:
                if sentiment not in sentiments:
                    raise DataError(f"{source}: no reviews in aclImdb/{split}/{_SENTIMENT_DIR[sentiment]}/: the "
                                    f"official split needs train/ and test/, each with pos/ and neg/ "
                                    f"(or use data.imdb.split: random)")
        return frame[["review", "sentiment", "split"]]
    _check_splittable(frame["sentiment"], test_fraction, source)
    train_index, _ = train_test_split(frame.index, test_size=test_fraction, random_state=seed,
                                      stratify=frame["sentiment"])
    result = frame[["review", "sentiment"]].copy()
    result["split"] = "test"
    result.loc[train_index, "split"] = "train"
    return result


def validation_split(labels, fraction: float, seed: int):
    """Row numbers ``(fit, validation)`` of a stratified random split of the training labels, so
    that a choice (an epoch, a setting) is made without the test split."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    try:
        fit, validation = train_test_split(rows, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError as exc:   # too few reviews of a class for the split
        raise DataError(f"cannot hold out a validation part of {len(labels)} training reviews ({exc})") from None
    return np.sort(fit), np.sort(validation)


def _check_splittable(sentiment: pd.Series, test_fraction: float, source: str) -> None:
    """What a stratified random split needs: both sentiments, twice each, and room for both in each split."""
    counts = {name: int((sentiment == name).sum()) for name in SENTIMENTS}
    found = ", ".join(f"{count} {name}" for name, count in counts.items())
    for name, count in counts.items():
        if count < 2:
            raise DataError(f"{source}: {'no' if count == 0 else 'only one'} {name} review ({found}): "
                            f"a stratified split needs at least 2 of each sentiment")
    n_test = math.ceil(test_fraction * len(sentiment))   # as scikit-learn rounds it
    n_train = len(sentiment) - n_test
    if min(n_train, n_test) < len(SENTIMENTS):
        raise DataError(f"{source}: {len(sentiment)} reviews at data.imdb.test_fraction = {test_fraction} give "
                        f"{n_train} train and {n_test} test reviews: each split needs at least one of each "
                        f"sentiment (add reviews or change test_fraction)")


# pragma: no mutate start (as above)
def read_reviews_table(path: str | Path) -> pd.DataFrame:
    """The ``review,sentiment,split`` CSV that the ``imdb_data`` stage writes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found (run `dvc repro imdb_data` first)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"review", "sentiment", "split"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: missing columns {sorted(missing)} (re-run `dvc repro imdb_data`)")
    return frame


def save_features(directory: Path, X_train, X_test, y_train, y_test) -> None:
    """The TF-IDF matrices (sparse ``.npz``) and labels, in ``directory``."""
    import numpy as np
    import scipy.sparse as sp

    sp.save_npz(directory / "X_train.npz", X_train)
    sp.save_npz(directory / "X_test.npz", X_test)
    np.savez(directory / "labels.npz", y_train=y_train, y_test=y_test)


def load_features(directory: str | Path):
    """``(X_train, y_train, X_test, y_test)`` written by :func:`save_features`."""
    import numpy as np
    import scipy.sparse as sp

    directory = Path(directory)
    try:
        X_train = sp.load_npz(directory / "X_train.npz").tocsr()
        X_test = sp.load_npz(directory / "X_test.npz").tocsr()
        with np.load(directory / "labels.npz") as labels:
            y_train, y_test = labels["y_train"], labels["y_test"]
    except FileNotFoundError as exc:
        raise DataError(f"{exc.filename}: not found (run `dvc repro preprocess` first)") from None
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{directory}: unreadable TF-IDF features ({exc}); re-run `dvc repro preprocess`") from None
    return X_train, y_train, X_test, y_test
# pragma: no mutate end
