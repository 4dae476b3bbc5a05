"""Outputs are valid JSON always and appear all at once or not at all, even after a kill at any
point of publishing; an output that cannot be written is one line naming it."""
import ctypes
import json
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

from nnlab.io import StageOutputs, dumps_json

from conftest import ROOT, default_params, run_stage, venv_env

# <linux/prctl.h> and <linux/capability.h>
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1


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


def test_json_is_deterministic_across_interpreters():
    """The same record, the same bytes in interpreters with other hash seeds (as two `dvc repro` runs
    are); a set, whose order follows the seed, is refused rather than written in some order."""
    code = ("import numpy as np\nfrom nnlab.io import dumps_json\n"
            "print(dumps_json({name: {'accuracy': np.float32(0.1), 'classes': (3, 1), 2: [np.int64(7), None]}"
            " for name in ('source', 'train', 'test', 'validation', 'diverged', 'unit', 'trained')}), end='')")
    written = {subprocess.run([sys.executable, "-c", code], env={**venv_env(), "PYTHONPATH": str(ROOT),
                                                                  "PYTHONHASHSEED": str(seed)},
                              capture_output=True, check=True, timeout=60).stdout for seed in (1, 2, 3)}
    assert len(written) == 1, written
    assert json.loads(written.pop())["unit"] == {"accuracy": 0.1, "classes": [3, 1], "2": [7, None]}
    with pytest.raises(TypeError):
        dumps_json({"classes": {"negative", "positive"}})


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


def test_leftovers_of_a_killed_run_are_cleared_files_and_folders(tmp_path):
    """SIGKILL while mri_normalize wrote its folder left `.normalized.<random>.tmp/` for good."""
    folder = tmp_path / "data" / "mri"
    (folder / ".normalized.k3x_9q2a.tmp").mkdir(parents=True)
    (folder / ".normalized.k3x_9q2a.tmp" / "train_x.npy").write_bytes(b"partial")
    (folder / ".normalized.abcd1234.tmp.old").mkdir()
    (folder / ".info.json.zz11yy22.tmp.json").write_text("half")
    with StageOutputs() as out:
        (out.directory(folder / "normalized") / "train_x.npy").write_bytes(b"whole")
        out.json(folder / "info.json", {})
    assert sorted(p.name for p in folder.iterdir()) == ["info.json", "normalized"]


# -- a kill at every point of publishing ----------------------------------------------------

OLD, NEW = "old", "new"
KILLED = 77
# The os functions that staging and publishing call to change names (rmtree removes through unlink and rmdir).
NAME_CHANGES = ("replace", "rename", "unlink", "rmdir")


def write_outputs(version: str) -> None:
    """Three outputs in the working directory: two files in two folders, and a folder."""
    with StageOutputs() as out:
        out.json("metrics/m.json", {"version": version})
        out.text("plots/p/history.csv", f"{version}\n")
        folder = out.directory("data/d")
        (folder / "x.txt").write_text(version)
        (folder / f"only_{version}.txt").write_text(version)


def versions(root) -> set[str]:
    found = {json.loads((root / "metrics/m.json").read_text())["version"],
             (root / "plots/p/history.csv").read_text().strip(),
             (root / "data/d/x.txt").read_text()}
    return found | {path.stem.removeprefix("only_") for path in (root / "data/d").glob("only_*")}


def hidden(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*"))


def killed_at(step: int) -> bool:
    """Write the new outputs in a forked child that dies (os._exit, as SIGKILL: no cleanup) just
    before its ``step``-th name change; False when it finished before reaching it."""
    pid = os.fork()
    if pid == 0:
        calls = iter(range(step + 1))

        def dying(change):
            def change_or_die(*args, **kwargs):
                if next(calls) == step:
                    os._exit(KILLED)
                return change(*args, **kwargs)
            return change_or_die

        for name in NAME_CHANGES:
            setattr(os, name, dying(getattr(os, name)))
        try:
            write_outputs(NEW)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == KILLED


def test_a_kill_at_any_point_of_publishing_leaves_old_or_new_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rolled_forward = 0
    step = 0
    while True:
        write_outputs(OLD)
        if not killed_at(step):
            break
        journal = list(tmp_path.glob(".publishing.*.tmp.json"))
        if not journal:
            assert versions(tmp_path) == {OLD}, f"killed at step {step}: a mix of old and new outputs"
        with StageOutputs():  # the next start of any stage
            pass
        rolled_forward += bool(journal)
        assert versions(tmp_path) == ({NEW} if journal else {OLD}), f"killed at step {step}"
        write_outputs(NEW)  # the rerun
        assert versions(tmp_path) == {NEW} and hidden(tmp_path) == [], f"killed at step {step}"
        step += 1
    assert versions(tmp_path) == {NEW} and hidden(tmp_path) == []
    assert step > 8 and rolled_forward > 3, (step, rolled_forward)


# -- outputs that cannot be written ---------------------------------------------------------

MNIST_OUTPUT = "data/mnist/raw.npz"   # 3.9 MB from the embedded digits


def limit_file_size() -> None:
    """`ulimit -f 1000` in the stage's process (Python ignores SIGXFSZ, so a write fails with EFBIG)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))


def assert_one_line_and_old_outputs_kept(result, message, root, old):
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"error: {message}"], result.stderr
    assert (root / MNIST_OUTPUT).read_bytes() == old
    assert hidden(root) == []


@pytest.fixture
def mnist_workdir(tmp_path):
    (tmp_path / MNIST_OUTPUT).parent.mkdir(parents=True)
    (tmp_path / MNIST_OUTPUT).write_bytes(b"old outputs")
    return tmp_path


def test_file_size_limit_is_one_line_naming_the_output(mnist_workdir):
    result = run_stage("mnist_data", default_params(), mnist_workdir, preexec_fn=limit_file_size)
    assert_one_line_and_old_outputs_kept(result, f"cannot write {MNIST_OUTPUT}: File too large",
                                         mnist_workdir, b"old outputs")


def test_output_folder_in_the_way_is_one_line_naming_it(mnist_workdir):
    """Works as root too (chmod does not stop root): the plots folder is a file."""
    (mnist_workdir / "plots").write_text("not a folder")
    result = run_stage("mnist_data", default_params(), mnist_workdir)
    assert_one_line_and_old_outputs_kept(result, "cannot write plots/mnist_data/data_stats.json: Not a directory (plots/mnist_data)",
                                         mnist_workdir, b"old outputs")


def without_dac_override() -> None:
    """Root writes into read-only folders through the capability CAP_DAC_OVERRIDE (as CI runs the
    tests): dropped from the bounding set before the stage's exec, root's stage runs without it,
    as a user's does. Without the right to drop it the run fails, rather than the test skipping."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_DAC_OVERRIDE)")


def test_read_only_output_folder_is_one_line_naming_it(mnist_workdir):
    (mnist_workdir / "plots").mkdir(mode=0o555)
    result = run_stage("mnist_data", default_params(), mnist_workdir, preexec_fn=without_dac_override)
    assert_one_line_and_old_outputs_kept(result, "cannot write plots/mnist_data/data_stats.json: Permission denied (plots/mnist_data)",
                                         mnist_workdir, b"old outputs")


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
