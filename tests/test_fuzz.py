"""Bad input, tried systematically with hypothesis: the IDX reader, the review loaders
(CSV and aclImdb tarballs) and the text cleaner get arbitrary bytes and strings, and
mutations of valid files. Each must give a result or the project's own one-line
error (an ``NnlabError``), never another exception or a hang (``deadline``)."""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import random
import re
import shlex
import struct
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from operator import getitem
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings, strategies as st

from nnlab.datasets import idx, imdb
from nnlab.errors import NnlabError
from nnlab.text import Cleaner, CleaningConfig

from conftest import ROOT, default_params, run_stage, tiny_params, venv_env
from pipeline_repo import expanded_stages

# FUZZ_EXAMPLES=2000 searches longer, from a random seed (the default run is derandomized, repeatable).
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)), deadline=2000,
                derandomize="FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def result_or_own_error(read, *args):
    """``read(*args)``, or None when it refused the input with a one-line NnlabError."""
    try:
        return read(*args)
    except NnlabError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"not one line: {message!r}"
        return None


@pytest.fixture
def work(tmp_path) -> Path:
    return tmp_path


# -- IDX -------------------------------------------------------------------------------

def idx_file(array: np.ndarray) -> bytes:
    return struct.pack(f">i{array.ndim}I", 0x0800 | array.ndim, *array.shape) + array.tobytes()


VALID_IMAGES = idx_file(np.arange(3 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(3, 28, 28))
VALID_LABELS = idx_file(np.array([0, 9, 3, 7], dtype=np.uint8))
READERS = {idx.IMAGES_MAGIC: idx.read_images, idx.LABELS_MAGIC: idx.read_labels}


def check_idx(path: Path, data: bytes, magic: int) -> None:
    path.write_bytes(data)
    array = result_or_own_error(READERS[magic], path)
    if array is not None:
        assert array.dtype == np.uint8
        assert array.ndim == (3 if magic == idx.IMAGES_MAGIC else 1)
        assert array.nbytes <= len(data)


@FUZZ
@given(data=st.binary(max_size=64), magic=st.sampled_from(sorted(READERS)), compress=st.booleans())
@example(data=b"\x1f\x8b", magic=idx.LABELS_MAGIC, compress=False)
# A header whose sizes multiply to 2**64: in int64 that wrapped to 0 bytes, then reshape failed.
@example(data=struct.pack(">i3I", 2051, 2**22, 2**21, 2**21), magic=idx.IMAGES_MAGIC, compress=False)
def test_idx_arbitrary_bytes(work, data, magic, compress):
    check_idx(work / "file", gzip.compress(data, mtime=0) if compress else data, magic)


@FUZZ
@given(magic=st.sampled_from(sorted(READERS)), cut=st.integers(min_value=0, max_value=2400),
       header=st.lists(st.tuples(st.integers(0, 15), st.integers(0, 255)), max_size=4),
       tail=st.binary(max_size=8), compress=st.booleans())
def test_idx_mutated_valid_file(work, magic, cut, header, tail, compress):
    """A valid small file, truncated, with header bytes overwritten and bytes appended."""
    data = bytearray(VALID_IMAGES if magic == idx.IMAGES_MAGIC else VALID_LABELS)
    for position, value in header:
        if position < len(data):
            data[position] = value
    data = bytes(data[:cut]) + tail
    if compress:
        packed = gzip.compress(data, mtime=0)
        data = packed[: max(2, cut % (len(packed) + 1))]  # truncated gzip streams too
    check_idx(work / "file.gz", data, magic)


def test_idx_valid_file_still_reads(work):
    (work / "labels").write_bytes(VALID_LABELS)
    assert idx.read_labels(work / "labels").tolist() == [0, 9, 3, 7]


# -- reviews CSV -----------------------------------------------------------------------

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "shift_jis"]
cells = st.one_of(st.sampled_from(["positive", "negative", " Positive ", "NEGATIVE", "", "meh", '"', ","]),
                  st.text(max_size=12))


def check_reviews_csv(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    frame = result_or_own_error(imdb.read_reviews_csv, path)
    if frame is not None:
        assert list(frame.columns) == ["review", "sentiment"] and len(frame) > 0
        assert set(frame["sentiment"]) <= set(imdb.SENTIMENTS)
        assert (frame["review"].str.strip() != "").all()


@FUZZ
@given(content=st.binary(max_size=200))
@example(content=b"review,sentiment\n")
@example(content=b"review,sentiment\n\x00,positive\n")
@example(content=b'review,sentiment\n"unclosed,positive\n')
def test_reviews_csv_arbitrary_bytes(work, content):
    check_reviews_csv(work / "reviews.csv", content)


@FUZZ
@given(header=st.lists(st.sampled_from(["review", "sentiment", "text", "", "review "]), min_size=1, max_size=4),
       rows=st.lists(st.lists(cells, min_size=0, max_size=4), max_size=5),
       encoding=st.sampled_from(ENCODINGS), separator=st.sampled_from([",", ";", "\t"]))
def test_reviews_csv_structured(work, header, rows, encoding, separator):
    """CSV-shaped text: known and unknown columns, ragged rows, quotes, other encodings."""
    lines = [separator.join(header)] + [separator.join(row) for row in rows]
    text = "\n".join(lines) + "\n"
    try:
        content = text.encode(encoding)
    except UnicodeEncodeError:
        content = text.encode(encoding, errors="replace")
    check_reviews_csv(work / "reviews.csv", content)


# -- aclImdb tarballs ------------------------------------------------------------------

member_names = st.one_of(
    st.builds(lambda root, split, polarity, review_id, stars: f"{root}{split}/{polarity}/{review_id}_{stars}.txt",
              st.sampled_from(["aclImdb/", "", "x/aclImdb/", "/"]), st.sampled_from(["train", "test", "unsup"]),
              st.sampled_from(["pos", "neg", "unsup", "pos/neg"]), st.integers(0, 10**6).map(str) | st.text(max_size=3),
              st.integers(0, 10).map(str)),
    st.text(min_size=1, max_size=30).filter(lambda name: "\x00" not in name),
)
member_kinds = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE])
member_contents = st.one_of(st.text(max_size=40).map(lambda t: t.encode("utf-8")), st.binary(max_size=40))
COMPRESSORS = {"tar": lambda b: b, "gz": lambda b: gzip.compress(b, mtime=0), "bz2": bz2.compress,
               "xz": lzma.compress}


def tarball_bytes(members: list[tuple[str, int, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                info.linkname = "aclImdb/train/pos/0_1.txt" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
                archive.addfile(info)
    return buffer.getvalue()


def check_tarball(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    frame = result_or_own_error(imdb.read_aclimdb_tarball, path)
    if frame is not None:
        assert len(frame) > 0 and set(frame["sentiment"]) <= set(imdb.SENTIMENTS)
        assert set(frame["split"]) <= {"train", "test"}


@FUZZ
@given(members=st.lists(st.tuples(member_names, member_kinds, member_contents), max_size=6),
       compression=st.sampled_from(sorted(COMPRESSORS)), keep=st.floats(0.0, 1.0))
def test_aclimdb_tarball_arbitrary_members(work, members, compression, keep):
    """Any member names, kinds and contents, compressed any way tarfile reads, whole or cut short."""
    content = COMPRESSORS[compression](tarball_bytes(members))
    if keep < 0.5:
        content = content[: int(len(content) * keep * 2)]
    check_tarball(work / "aclImdb_v1.tar.gz", content)


@FUZZ
@given(content=st.binary(max_size=300), prefix=st.sampled_from([b"", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"]))
def test_aclimdb_tarball_arbitrary_bytes(work, content, prefix):
    check_tarball(work / "aclImdb_v1.tar.gz", prefix + content)


# -- text cleaner ----------------------------------------------------------------------

CLEANERS = [Cleaner(CleaningConfig()),
            Cleaner(CleaningConfig(stop_words="sklearn", normalise="porter")),
            Cleaner(CleaningConfig(stop_words="sklearn", keep_negations=False, normalise="snowball")),
            Cleaner(CleaningConfig(lowercase=False, strip_html=False, remove_punctuation=False,
                                   numbers_to_words=False))]
review_like = st.lists(st.one_of(
    st.text(max_size=20), st.sampled_from(["<br />", "<b>", "&amp;", "&#x110000;", "&#0;", "don't", "\\n", "1,500",
                                           "9" * 40, "١٢٣", "²", "İ", "ǅ", "\u200b", "\ud7ff", "ﬀ"])),
    max_size=12).map(" ".join)


@FUZZ
@given(text=st.one_of(st.text(max_size=200), review_like), which=st.integers(0, len(CLEANERS) - 1))
def test_cleaner_arbitrary_text(text, which):
    cleaner = CLEANERS[which]
    cleaned = result_or_own_error(cleaner, text)
    assert isinstance(cleaned, str)
    assert cleaned == " ".join(cleaned.split()), "tokens are joined by single spaces"
    if cleaner.config.remove_punctuation:
        assert all(re.fullmatch(r"[^\W_]+", token) for token in cleaned.split()), cleaned


# -- params.yaml, stage by stage -------------------------------------------------------

PARAMS_FILE = "params.test.yaml"
UNKNOWN_KEY = "no_such_key"
WRONG_TYPE = {"a mapping": "where a value belongs"}

def own_params(stage: dict) -> str | None:
    """The dotted params entry a stage owns: its first one that is not the shared ``train``."""
    return next((p for p in stage.get("params", []) if isinstance(p, str) and p.split(".")[0] != "train"), None)


def broken_params(dotted: str, case: str) -> tuple[dict, str] | None:
    """The default params with ``case`` applied inside ``dotted``, and the key the error must name;
    None where the case does not apply."""
    params = default_params()
    keys = dotted.split(".")
    value = reduce(getitem, keys, params)
    if isinstance(value, dict):
        section, prefix, candidates = value, dotted, [k for k, v in value.items() if not isinstance(v, dict)]
    elif case == "unknown key":
        return None  # the stage reads single values (report: data.<name>.source), no section of its own
    else:
        section, prefix, candidates = reduce(getitem, keys[:-1], params), ".".join(keys[:-1]), keys[-1:]
    if case == "unknown key":
        key = UNKNOWN_KEY
        section[key] = 1
    elif case == "wrong type":
        key = candidates[0]
        section[key] = WRONG_TYPE
    else:
        integers = [k for k in candidates if type(section[k]) is int]
        if not integers:
            return None
        key = integers[0]
        section[key] = -1
    return params, f"{prefix}.{key}"


CASES = ("unknown key", "wrong type", "out of range")
STAGES = expanded_stages(ROOT)


def params_cases() -> list:
    """Each stage with each case that applies to its own parameters (none to a stage that reads none)."""
    return [pytest.param(name, case, id=f"{name}-{case.replace(' ', '_')}")
            for name, stage in STAGES.items() if own_params(stage)
            for case in CASES if broken_params(own_params(stage), case)]


@pytest.fixture(scope="module")
def params_runs(tmp_path_factory) -> dict[tuple[str, str], dict]:
    """Every stage on every broken params file, each in an empty folder of its own; a few at a time,
    as forks of the stage server (tests/stage_server.py)."""
    root = tmp_path_factory.mktemp("params")
    runs, calls = {}, []
    for index, (name, stage) in enumerate(STAGES.items()):
        dotted = own_params(stage)
        if dotted is None:
            continue
        module, *argv = shlex.split(stage["cmd"])[2:]
        for case in CASES:
            broken = broken_params(dotted, case)
            if broken is None:
                continue
            work = root / f"{index}-{case.replace(' ', '_')}"
            work.mkdir()
            runs[name, case] = {"key": broken[1], "work": work}
            calls.append((module.removeprefix("stages."), broken[0], work, argv))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda call: run_stage(call[0], call[1], call[2], args=call[3]), calls))
    for run, result in zip(runs.values(), results):
        run["code"], run["stderr"] = result.returncode, result.stderr
    return runs


@pytest.mark.parametrize("stage, case", params_cases())
def test_stage_rejects_bad_params_in_one_line(params_runs, stage, case):
    """An unknown key, a value of the wrong type, a value out of range: exit 2, one line naming
    the key, before any data is read (the folder has none) and with nothing written."""
    run = params_runs[stage, case]
    assert run["code"] == 2, f"exit {run['code']}:\n{run['stderr']}"
    lines = run["stderr"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and run["key"] in lines[0], run["stderr"]
    left = sorted(str(path.relative_to(run["work"])) for path in run["work"].rglob("*"))
    assert left == [PARAMS_FILE], f"wrote {left}"


def plain_python_m(stage: str, params: dict, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m stages.<stage>`` in an interpreter of its own, as a user's ``dvc repro`` starts it:
    another hash seed than the stage server's, and one thread (the server's forks have their own)."""
    (cwd / PARAMS_FILE).write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", "--params", str(cwd / PARAMS_FILE)], cwd=cwd,
                          env={**venv_env(stage_server=False), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
                               "PYTHONHASHSEED": str(random.randrange(1, 2**32))},
                          capture_output=True, text=True, timeout=300)


def written(folder: Path) -> dict[str, bytes]:
    """The outputs a run left in ``folder``: not its params, nor logs/ (times and memory of the run)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != PARAMS_FILE and path.relative_to(folder).parts[0] != "logs"}


def test_forked_runs_match_python_dash_m(tmp_path):
    """A stage in the stage server's fork writes the bytes, and refuses bad params with the words,
    that it does in an interpreter of its own."""
    forked, alone = tmp_path / "forked", tmp_path / "alone"
    forked.mkdir()
    alone.mkdir()
    ran = run_stage("generate", tiny_params(), forked), plain_python_m("generate", tiny_params(), alone)
    assert [result.returncode for result in ran] == [0, 0], [result.stderr for result in ran]
    assert written(forked), "generate wrote nothing"
    assert written(forked) == written(alone)

    params, key = broken_params("generate", "wrong type")
    result = plain_python_m("generate", params, tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and key in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["alone", "forked", PARAMS_FILE]
    forked = run_stage("generate", params, tmp_path)
    assert (forked.returncode, forked.stderr) == (result.returncode, result.stderr)
