"""Stage `generate`: the gaussians, moons and circles datasets, with scatter plots.

Reads params `generate`; writes data/generated/*.npz and plots/generate/*.png.
"""
from __future__ import annotations

import numpy as np

from nnlab import memory, plotting
from nnlab.cli import run, stage_parser
from nnlab.datasets import synthetic
from nnlab.io import StageOutputs
from nnlab.params import Section, load_params

DATA_DIR = "data/generated"
PLOT_DIR = "plots/generate"
#: Bytes per point of the circles' decision grid: the mesh's two coordinates and the saved copy.
GRID_POINT_BYTES = 48


def build(cfg: Section) -> dict[str, synthetic.Split]:
    seed = cfg.int("seed", min=0)
    recipes, needs = {}, []

    g = cfg.section("gaussians")
    options = dict(
        n_per_class=g.int("n_per_class", min=2),
        mean_pos=g.float_list("mean_pos"), mean_neg=g.float_list("mean_neg"),
        cov_pos=g.float_matrix("cov_pos", 2, 2), cov_neg=g.float_matrix("cov_neg", 2, 2),
        test_fraction=g.float("test_fraction", min=0.01, max=0.99), seed=seed,
    )
    g.check_all_used()
    recipes["gaussians"] = (synthetic.gaussians, options)
    needs.append(memory.points(g, "n_per_class", 2 * options["n_per_class"]))

    for name in ("moons_1000", "moons_2000"):
        m = cfg.section(name)
        options = dict(n_samples=m.int("n_samples", min=4), noise=m.float("noise", min=0),
                       test_fraction=m.float("test_fraction", min=0.01, max=0.99), seed=seed)
        m.check_all_used()
        recipes[name] = (synthetic.moons, options)
        needs.append(memory.points(m, "n_samples", options["n_samples"]))

    c = cfg.section("circles")
    options = dict(
        n_samples=c.int("n_samples", min=4), noise=c.float("noise", min=0),
        factor=c.float("factor", min=0.01, max=0.99),
        test_fraction=c.float("test_fraction", min=0.01, max=0.99), seed=seed,
        grid_extent=c.float("grid_extent", positive=True), grid_step=c.float("grid_step", positive=True),
    )
    c.check_all_used()
    recipes["circles"] = (synthetic.circles, options)
    ticks = 2 * options["grid_extent"] / options["grid_step"] + 1
    needs += [memory.points(c, "n_samples", options["n_samples"]),
              memory.array(c, "grid_step", (ticks, ticks), GRID_POINT_BYTES,
                           f"a grid of {ticks:.0f}x{ticks:.0f} points")]
    cfg.check_all_used()
    memory.check(*needs)
    return {name: generator(**options) for name, (generator, options) in recipes.items()}


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    datasets = build(load_params(args.params).section("generate"))
    with StageOutputs() as out:
        for name, split in datasets.items():
            out.npz(f"{DATA_DIR}/{name}.npz", **split.arrays())
            fig = plotting.scatter_splits(
                {"train": (split.X_train, split.y_train), "test": (split.X_test, split.y_test)}, title=name)
            out.figure(f"{PLOT_DIR}/{name}.png", fig)
    for name, split in datasets.items():
        print(f"{name}: {len(split.y_train)} train, {len(split.y_test)} test, classes {np.unique(split.y_train).tolist()}")


if __name__ == "__main__":
    run(main)
