"""The generate stage: deterministic datasets of the right shapes, and clear errors."""
import numpy as np
import pytest

from conftest import default_params, deep_merge, run_stage
from nnlab.datasets import synthetic
from nnlab.params import Section
from stages.generate import build


def generated(overrides=None):
    cfg = deep_merge(default_params()["generate"], overrides or {})
    return build(Section(cfg, file="params.yaml", prefix="generate"))


def test_same_seed_same_data_other_seed_other_data():
    first, again, other = generated(), generated(), generated({"seed": 7})
    for name in first:
        for key, array in first[name].arrays().items():
            np.testing.assert_array_equal(array, again[name].arrays()[key])
    assert not np.array_equal(first["moons_1000"].X_train, other["moons_1000"].X_train)


def test_shapes_and_splits():
    data = generated()
    g = data["gaussians"]
    assert g.X_train.shape == (160, 2) and g.X_test.shape == (40, 2)
    assert sorted(np.unique(g.y_train)) == [-1, 1]
    assert (g.y_test == 1).sum() == 20  # stratified: 20% of each class
    assert data["moons_1000"].X_train.shape == (800, 2)
    assert data["moons_2000"].X_test.shape == (400, 2)
    circles = data["circles"]
    assert circles.X_train.shape == circles.X_test.shape == (200, 2)
    assert circles.extra["grid_x"].shape == circles.extra["grid_y"].shape


def test_means_and_covariance_come_from_params():
    g = generated({"gaussians": {"n_per_class": 2000, "mean_pos": [3.0, -2.0],
                                 "cov_pos": [[4.0, 0.0], [0.0, 0.25]]}})["gaussians"]
    pos = np.vstack([g.X_train[g.y_train == 1], g.X_test[g.y_test == 1]])
    np.testing.assert_allclose(pos.mean(axis=0), [3.0, -2.0], atol=0.1)
    np.testing.assert_allclose(pos.var(axis=0), [4.0, 0.25], rtol=0.1)


def test_a_saved_split_loads_whole_and_a_broken_one_says_what_to_run(tmp_path):
    from nnlab.errors import DataError

    split = synthetic.Split(np.zeros((2, 2)), np.array([0, 1]), np.ones((1, 2)), np.array([1]),
                            {"grid_x": np.arange(3), "grid_y": np.arange(3) + 1})
    np.savez(tmp_path / "circles.npz", **split.arrays())
    loaded, (grid_x, grid_y) = synthetic.load_circles(tmp_path / "circles.npz")
    assert loaded.arrays().keys() == split.arrays().keys() and (grid_y - grid_x == 1).all()
    for key, array in split.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[key], array)
    np.savez(tmp_path / "plain.npz", **{k: v for k, v in split.arrays().items() if not k.startswith("grid")})
    with pytest.raises(DataError, match=r"plain\.npz: missing the grid_x/grid_y mesh \(rerun `dvc repro generate`\)$"):
        synthetic.load_circles(tmp_path / "plain.npz")
    np.savez(tmp_path / "part.npz", X_train=split.X_train, y_test=split.y_test)
    with pytest.raises(DataError, match=r"part\.npz: missing arrays X_test, y_train$"):
        synthetic.load_split(tmp_path / "part.npz")
    with pytest.raises(DataError, match=r"gone\.npz: not found \(run `dvc repro generate` first\)$"):
        synthetic.load_split(tmp_path / "gone.npz")
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(DataError, match=r"text\.npz: not a readable \.npz split: "):
        synthetic.load_split(tmp_path / "text.npz")


def test_moons_and_circles_take_their_noise_factor_and_grid():
    exact = synthetic.circles(40, noise=0.0, factor=0.5, test_fraction=0.25, seed=0, grid_extent=1.0, grid_step=0.5)
    X = np.vstack([exact.X_train, exact.X_test])
    assert sorted(set(np.round(np.hypot(*X.T), 12))) == [0.5, 1.0]
    ticks = [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert exact.extra["grid_x"].tolist() == [ticks] * 5 and exact.extra["grid_y"].T.tolist() == [ticks] * 5
    noisy = synthetic.circles(40, noise=0.1, factor=0.5, test_fraction=0.25, seed=0, grid_extent=1.0, grid_step=0.5)
    assert len(set(np.round(np.hypot(*noisy.X_train.T), 12))) > 2
    moons = synthetic.moons(40, noise=0.1, test_fraction=0.25, seed=0)
    upper = moons.X_train[moons.y_train == 0]   # the upper half circle about the origin, radius 1, without noise
    assert not np.allclose(np.hypot(*upper.T), 1.0)
    gaussians = synthetic.gaussians(10, [1, 1], [-1, -1], np.eye(2), np.eye(2), test_fraction=0.2, seed=0)
    for split, labels in ((exact, [0, 1]), (moons, [0, 1]), (gaussians, [-1, 1])):
        for y, size in ((split.y_train, len(split.X_train)), (split.y_test, len(split.X_test))):
            assert y.dtype == np.int64 and y.shape == (size,) and sorted(set(y.tolist())) == labels


def test_one_hot():
    np.testing.assert_array_equal(synthetic.one_hot(np.array([1, 0]), 2), [[0, 1], [1, 0]])


@pytest.mark.parametrize("override, message", [
    ({"moons_1000": {"noise": "lots"}}, "generate.moons_1000.noise = 'lots': must be a number"),
    ({"circles": {"test_fraction": 1.5}}, "generate.circles.test_fraction = 1.5: must be <= 0.99"),
    ({"gaussians": {"cov_pos": [[1, 0]]}}, "generate.gaussians.cov_pos"),
    ({"moons_3000": {"n_samples": 3}}, "unknown key generate.moons_3000"),
])
def test_bad_params_one_line_and_no_outputs(tmp_path, override, message):
    params = deep_merge(default_params(), {"generate": override})
    result = run_stage("generate", params, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "plots").exists()


def test_stage_writes_every_dataset(tmp_path):
    result = run_stage("generate", default_params(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = {"gaussians", "moons_1000", "moons_2000", "circles"}
    assert {p.stem for p in (tmp_path / "data/generated").glob("*.npz")} == names
    assert {p.stem for p in (tmp_path / "plots/generate").glob("*.png")} == names
    split = synthetic.load_split(tmp_path / "data/generated/circles.npz")
    assert "grid_x" in split.extra
