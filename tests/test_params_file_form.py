"""params.yaml is kept in the form DVC writes it, so that `dvc exp run -S key=value` changes one line.

DVC applies `-S` with ruamel's round trip (dvc.utils.hydra.apply_overrides): it keeps comments, but
writes every list as a block list and every string in single quotes. A file in another form (flow
lists such as `mean_pos: [10.0, 10.0]`, `"20"`) came back from a one-value experiment as a 114-line
`git diff`. These tests call the very function `dvc exp run -S` calls, on a copy of the file.
"""
from __future__ import annotations

import difflib
import shutil

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from conftest import ROOT

COMMITTED = (ROOT / "params.yaml").read_text()


def changed_lines(tmp_path, *overrides: str) -> tuple[list[str], str]:
    path = tmp_path / "params.yaml"
    shutil.copy2(ROOT / "params.yaml", path)
    apply_overrides(path, list(overrides))
    after = path.read_text()
    diff = [line for line in difflib.unified_diff(COMMITTED.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return diff, after


def comments(text: str) -> list[str]:
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


def test_setting_a_key_to_its_own_value_rewrites_nothing(tmp_path):
    """The file is a fixed point of DVC's writer: whatever DVC would reformat is already so."""
    diff, _ = changed_lines(tmp_path, "mlp_moons.steps=1500")
    assert diff == []


@pytest.mark.parametrize("override, key, old, new", [
    ("mlp_moons.lr=0.1", ("mlp_moons", "lr"), None, 0.1),                       # null to a number
    ("data.imdb.source=csv", ("data", "imdb", "source"), "embedded", "csv"),    # a string
    ("mlp_moons.hidden_units='64'", ("mlp_moons", "hidden_units"), "20", "64"),  # a quoted string
    ("generate.gaussians.mean_pos=[5.0,10.0]", ("generate", "gaussians", "mean_pos"), [10.0, 10.0], [5.0, 10.0]),
    ("mnist_grid.lrs=[0.1,0.01,0.0001]", ("mnist_grid", "lrs"), [0.1, 0.01, 0.001], [0.1, 0.01, 0.0001]),
])
def test_one_key_set_as_dvc_exp_run_sets_it_changes_one_line_and_keeps_every_comment(tmp_path, override, key,
                                                                                     old, new):
    diff, after = changed_lines(tmp_path, override)
    values = yaml.safe_load(after)
    original = yaml.safe_load(COMMITTED)
    for part in key:
        values, original = values[part], original[part]
    assert (original, values) == (old, new)
    assert len(diff) == 2, f"{override}: {len(diff) // 2} lines changed:\n" + "\n".join(diff)
    assert comments(after) == comments(COMMITTED)
