"""Matplotlib figures shared by the stages (headless Agg backend)."""
from __future__ import annotations

import textwrap
from typing import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

#: x axes that count whole epochs or steps.
COUNTS = ("epoch", "step")
#: Positive values spanning more than this factor are drawn on a log axis, so that one exploding
#: run does not flatten every other line.
LOG_SPAN = 100.0


def colours(n: int) -> list:
    """``n`` distinct colours: matplotlib's ten, or twenty beyond ten."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(k % cmap.N) for k in range(n)]


def spans_decades(values) -> bool:
    finite = np.asarray([v for v in values if v is not None], dtype=float)
    finite = finite[np.isfinite(finite)]
    return finite.size > 1 and finite.min() > 0 and finite.max() / finite.min() > LOG_SPAN


def style_axes(ax, xlabel: str, values) -> None:
    """Whole-number ticks on an epoch or step axis, a log y axis where the values span decades, a grid."""
    if xlabel in COUNTS:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if spans_decades(values):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)


def set_title(ax, title: str, *, fontsize: float = 9) -> None:
    """A title wrapped to the axes' width, so a long one (a real data set's description) is never clipped."""
    width_inches = ax.get_position().width * ax.figure.get_figwidth()
    characters = max(20, int(width_inches * 72 / (0.55 * fontsize)))  # an average glyph is about 0.55 em wide
    lines = [textwrap.fill(line, characters) for line in title.splitlines()]
    ax.set_title("\n".join(lines), fontsize=fontsize)


def curves(x: Sequence, series: Mapping[str, Sequence], *, title: str, xlabel: str,
           ylabel: str, logy: bool = False):
    """One line per named series over a shared x axis, each in its own colour; a log y axis where
    asked or where the values span decades."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for (label, ys), colour in zip(series.items(), colours(len(series))):
        ax.plot(x, [np.nan if y is None else y for y in ys], label=label, color=colour)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    style_axes(ax, xlabel, [y for ys in series.values() for y in ys])
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def split_curves(history: Sequence[dict], *, title: str, x: str = "step",
                 metrics: Sequence[str] = ("accuracy", "loss")) -> dict:
    """``{metric: figure}``: the train and test ``<split>_<metric>`` columns of ``history`` rows against ``x``."""
    xs = [row[x] for row in history]
    return {
        metric: curves(xs, {f"{split} {metric}": [row[f"{split}_{metric}"] for row in history]
                            for split in ("train", "test")},
                       title=f"{title}: {metric}", xlabel=x, ylabel=metric)
        for metric in metrics
    }


def scatter_splits(splits: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str):
    """Side-by-side 2-D scatter plots, one per split, coloured by label."""
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4.5), squeeze=False)
    for ax, (split, (X, y)) in zip(axes[0], splits.items()):
        for label in np.unique(y):
            mask = y == label
            ax.scatter(X[mask, 0], X[mask, 1], s=8, alpha=0.7, label=f"class {label}")
        ax.set(title=f"{title}: {split} ({len(y)})", xlabel="x1", ylabel="x2")
        ax.legend(loc="best")
    fig.tight_layout()
    return fig


def decision_surface(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray,
                     *, title: str, resolution: int = 200, grid: tuple[np.ndarray, np.ndarray] | None = None):
    """Filled contour of ``predict`` (class scores or labels) over the plane, with points on top.

    ``grid`` may be a precomputed ``(xx, yy)`` mesh (the circles dataset ships one).
    """
    if grid is None:
        pad = 0.5
        xs = np.linspace(X[:, 0].min() - pad, X[:, 0].max() + pad, resolution)
        ys = np.linspace(X[:, 1].min() - pad, X[:, 1].max() + pad, resolution)
        grid = np.meshgrid(xs, ys)
    xx, yy = grid
    zz = np.asarray(predict(np.c_[xx.ravel(), yy.ravel()])).reshape(xx.shape)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.contourf(xx, yy, zz, levels=20, cmap="RdBu", alpha=0.6)
    for label in np.unique(y):
        mask = y == label
        ax.scatter(X[mask, 0], X[mask, 1], s=8, edgecolor="k", linewidth=0.2, label=f"class {label}")
    ax.set(title=title, xlabel="x1", ylabel="x2")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def heatmap(values: np.ndarray, row_labels: Sequence, col_labels: Sequence, *, title: str,
            xlabel: str, ylabel: str, fmt: str = "{:.2f}"):
    """Annotated heat-map; NaN cells (diverged runs) are drawn grey and marked."""
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 * len(col_labels) + 2, 0.7 * len(row_labels) + 1.8))
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("lightgrey")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(col_labels)), [str(c) for c in col_labels])
    ax.set_yticks(range(len(row_labels)), [str(r) for r in row_labels])
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = "diverged" if np.isnan(values[i, j]) else fmt.format(values[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if not np.isnan(values[i, j]) else "k")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def bar_chart(groups: Mapping[str, Mapping[str, float | str]], *, title: str, ylabel: str,
              rotate_labels: bool = False, width_inches: float = 7):
    """Grouped bars: ``{group: {series: value}}``.

    A value given as text (``"diverged"``, ``"not reported"``) is a marked gap: a
    hatched empty stub with that text written above it, never a bar of height 0
    that reads as a score. The legend sits right of the axes, where it hides no
    bar and no value.
    """
    group_names = list(groups)
    series_names = list(next(iter(groups.values())))
    width = 0.8 / len(series_names)
    palette = colours(len(series_names))
    fig, ax = plt.subplots(figsize=(width_inches, 4))
    for k, (series, colour) in enumerate(zip(series_names, palette)):
        xs = np.arange(len(group_names)) + (k - (len(series_names) - 1) / 2) * width
        values = [groups[g][series] for g in group_names]
        bars = ax.bar(xs, [0.0 if isinstance(v, str) else v for v in values], width, color=colour)
        ax.bar_label(bars, labels=["" if isinstance(v, str) else f"{v:.3g}" for v in values], fontsize=8)
        for x, value, bar in zip(xs, values, bars):
            if isinstance(value, str):
                bar.set_visible(False)
                ax.bar(x, 0.06, width, bottom=0, transform=ax.get_xaxis_transform(), fill=False, hatch="///",
                       edgecolor=bar.get_facecolor(), linewidth=0.8)
                ax.text(x, 0.08, value, transform=ax.get_xaxis_transform(), rotation=90, ha="center",
                        va="bottom", fontsize=7, color="black", fontstyle="italic")
    ax.set_xticks(range(len(group_names)), group_names)
    if rotate_labels:
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.set_ylabel(ylabel)
    # Handles of their own: a series whose first bar is a gap would otherwise have no swatch.
    ax.legend(handles=[Patch(color=colour, label=series) for series, colour in zip(series_names, palette)],
              loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    fig.tight_layout()
    set_title(ax, title)
    fig.tight_layout()
    return fig


def run_curves(history: Sequence[dict], x: str, y: str, *, title: str, ylabel: str):
    """One line per run of a long history (:func:`nnlab.results.long_history`), each in its own colour;
    a run that diverged is a dashed vertical line at the epoch it diverged at, named in the legend."""
    runs = list(dict.fromkeys(row["run"] for row in history))
    fig, ax = plt.subplots(figsize=(6, 4))
    for run, colour in zip(runs, colours(len(runs))):
        rows = [row for row in history if row["run"] == run]
        trained = [row for row in rows if row["status"] != "diverged"]
        diverged = [row[x] for row in rows if row["status"] == "diverged"]
        label = f"{run} (diverged at {x} {diverged[0]})" if diverged else run
        if trained:
            ax.plot([row[x] for row in trained], [row[y] for row in trained], marker="o", color=colour, label=label)
        for at in diverged:
            ax.axvline(at, color=colour, linestyle="--", linewidth=1.5, label=None if trained else label)
    ax.set(xlabel=x, ylabel=ylabel)
    style_axes(ax, x, [row[y] for row in history])
    ax.legend(fontsize=8)
    fig.tight_layout()
    set_title(ax, title)
    fig.tight_layout()
    return fig


def decision_line(w: np.ndarray, splits: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str):
    """The line ``w . [x, 1] = 0`` of a linear classifier over the points of each split, one panel per split."""
    fig, axes = plt.subplots(1, len(splits), figsize=(5 * len(splits), 4.5), squeeze=False)
    for ax, (split, (X, y)) in zip(axes[0], splits.items()):
        for label, colour in zip(np.unique(y), ("tab:blue", "tab:red")):
            ax.scatter(*X[y == label].T, s=10, color=colour, label=f"y = {label:+d}")
        x1 = np.array(ax.get_xlim())
        if abs(w[1]) > 1e-12:
            ax.plot(x1, -(w[0] * x1 + w[2]) / w[1], "k-", label="decision line")
        elif abs(w[0]) > 1e-12:
            ax.axvline(-w[2] / w[0], color="k", label="decision line")
        ax.set_ylim(X[:, 1].min() - 1, X[:, 1].max() + 1)
        ax.set(title=f"{title}: {split}", xlabel="x1", ylabel="x2")
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def separation(rows: Sequence[dict]):
    """Test (and train) accuracy against the distance between the means, one line per variance."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for variance in sorted({row["variance"] for row in rows}):
        group = sorted((r for r in rows if r["variance"] == variance), key=lambda r: r["mean_distance"])
        distances = [r["mean_distance"] for r in group]
        line, = ax.plot(distances, [r["test_accuracy"] for r in group], "o-", label=f"test, variance {variance:g}")
        ax.plot(distances, [r["train_accuracy"] for r in group], "x--", color=line.get_color(),
                alpha=0.6, label=f"train, variance {variance:g}")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set(title="Perceptron accuracy against separation of the clouds",
           xlabel="distance between the means", ylabel="accuracy", ylim=(0, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def grid_curves(runs: Sequence):
    """One row per batch size: train loss (log scale) and test accuracy per epoch, one line per lr.

    ``runs`` are training results with ``batch_size`` and ``lr`` (:class:`nnlab.models.tanh_mlp.RunResult`).
    """
    batch_sizes = sorted({run.batch_size for run in runs})
    fig, axes = plt.subplots(len(batch_sizes), 2, figsize=(11, 2.6 * len(batch_sizes)), squeeze=False)
    for (loss_ax, acc_ax), batch_size in zip(axes, batch_sizes):
        for run in (r for r in runs if r.batch_size == batch_size):
            epochs = [row["epoch"] for row in run.history]
            label = f"lr {run.lr:g}" + (f" (diverged at epoch {run.diverged_at})" if run.diverged else "")
            loss_ax.plot(epochs, [row["train_loss"] for row in run.history], label=label)
            acc_ax.plot(epochs, [row["test_accuracy"] for row in run.history], label=label)
        loss_ax.set(title=f"batch {batch_size}: train loss", xlabel="epoch", ylabel="loss", yscale="log")
        acc_ax.set(title=f"batch {batch_size}: test accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0.3, 1.02))
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3)
        acc_ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def step_curves(panels: dict[str, dict[str, list[dict]]]):
    """Runs of the linear MNIST classifiers, one column per panel: train loss (log scale) on top,
    train/test accuracy below, one colour per run.

    ``panels`` maps a panel title to ``{run label: history rows}``.
    """
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(2, len(panels), figsize=(4.5 * len(panels) + 1, 7), squeeze=False)
    for (loss_ax, accuracy_ax), (title, histories) in zip(axes.T, panels.items()):
        for k, (label, rows) in enumerate(histories.items()):
            colour = colours[k % len(colours)]
            steps = [row["step"] for row in rows]
            loss_ax.plot(steps, [row["train_loss"] for row in rows], color=colour, label=label)
            accuracy_ax.plot(steps, [row["train_accuracy"] for row in rows], color=colour, linestyle="--",
                             label=f"{label} train")
            accuracy_ax.plot(steps, [row["test_accuracy"] for row in rows], color=colour, label=f"{label} test")
        loss_ax.set(title=f"{title}: train loss", xlabel="step", ylabel="0.5 ||Wx - y||^2", yscale="log")
        accuracy_ax.set(title=f"{title}: accuracy", xlabel="step", ylabel="accuracy")
        for ax in (loss_ax, accuracy_ax):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
