"""Outputs are valid JSON always and appear all at once or not at all."""
import json
import os

import numpy as np
import pytest

from nnlab.io import StageOutputs, dumps_json


def test_non_finite_values_become_null(tmp_path):
    path = tmp_path / "m.json"
    with StageOutputs() as out:
        out.json(path, {"loss": float("nan"), "acc": np.float32(0.5), "hist": np.array([1.0, np.inf]),
                          "n": np.int64(3), "ok": np.bool_(True)})
    assert json.loads(path.read_text()) == {"loss": None, "acc": 0.5, "hist": [1.0, None], "n": 3, "ok": True}


def test_outputs_appear_only_on_success(tmp_path):
    (tmp_path / "old.json").write_text('{"old": true}')
    with pytest.raises(RuntimeError):
        with StageOutputs() as out:
            out.json(tmp_path / "old.json", {"new": True})
            out.csv(tmp_path / "plots" / "h.csv", [{"step": 1, "loss": 0.5}])
            raise RuntimeError("interrupted midway")
    assert json.loads((tmp_path / "old.json").read_text()) == {"old": True}
    assert not (tmp_path / "plots" / "h.csv").exists()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["old.json"]

    with StageOutputs() as out:
        out.json(tmp_path / "old.json", {"new": True})
        out.csv(tmp_path / "plots" / "h.csv", [{"step": 1, "loss": float("nan")}])
    assert json.loads((tmp_path / "old.json").read_text()) == {"new": True}
    assert (tmp_path / "plots" / "h.csv").read_text() == "step,loss\n1,\n"


def test_directory_output_replaces_the_old_one(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "stale.npy").write_text("stale")
    with StageOutputs() as out:
        np.save(out.directory(target) / "fresh.npy", np.arange(3))
    assert [p.name for p in target.iterdir()] == ["fresh.npy"]


def test_json_is_deterministic():
    assert dumps_json({"a": [0.1, 2]}) == dumps_json({"a": [0.1, 2]})


def test_floats_are_written_to_six_significant_digits():
    # Two float32 sums of one loss in different orders (as two CPUs' kernels give) write the same figure.
    assert dumps_json({"loss": 0.020530974022112788}) == dumps_json({"loss": 0.020530950124375523})
    assert json.loads(dumps_json({"a": 1234567.0, "b": 1e-8, "c": np.float32(0.1)})) == {
        "a": 1234570.0, "b": 1e-8, "c": 0.1}


def test_outputs_get_ordinary_permissions(tmp_path):
    with StageOutputs() as out:
        out.json(tmp_path / "m.json", {})
        (out.directory(tmp_path / "d") / "f.npy").write_bytes(b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "d" / "f.npy").stat().st_mode & 0o777 == 0o666 & ~mask


def test_temporaries_of_a_killed_run_are_cleared(tmp_path):
    stale = tmp_path / ".m.json.abc123.tmp.json"
    stale.write_text("half")
    with StageOutputs() as out:
        out.json(tmp_path / "m.json", {})
    assert not stale.exists()


def test_outputs_linked_to_the_cache_are_replaced_not_written_through(tmp_path):
    # .dvc/config's cache.type links data/ files to DVC's cache; as root, their read-only mode does not
    # stop a write, so a stage that wrote into the link would silently change the cached copy.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "m").write_text("cached")
    (cache / "x").write_text("cached")
    (tmp_path / "data").mkdir()
    os.link(cache / "m", tmp_path / "m.json")
    os.link(cache / "x", tmp_path / "data" / "x.npy")
    with StageOutputs() as out:
        out.text(tmp_path / "m.json", "new")
        (out.directory(tmp_path / "data") / "x.npy").write_text("new")
    assert (tmp_path / "m.json").read_text() == (tmp_path / "data" / "x.npy").read_text() == "new"
    assert (cache / "m").read_text() == (cache / "x").read_text() == "cached"
