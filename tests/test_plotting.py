"""Figures say what they show: a diverged run is a marked gap, not a 0 bar, and every diverged run
of a study is marked; the legend covers no bar; a long title wraps instead of being clipped; series
have colours of their own; epochs are whole numbers; values spanning decades are on a log axis."""
import matplotlib.colors

from nnlab import plotting
from nnlab.results import long_history


def test_text_values_are_marked_gaps_and_the_legend_is_outside_the_axes():
    fig = plotting.bar_chart({"a": {"ours": 0.7, "report": "not reported"}, "b": {"ours": "diverged", "report": 0.1}},
                             title="t", ylabel="accuracy")
    ax = fig.axes[0]
    visible = sorted(round(bar.get_height(), 3) for bar in ax.patches if bar.get_visible() and bar.get_fill())
    assert visible == [0.1, 0.7]
    assert sum(bool(bar.get_hatch()) for bar in ax.patches if bar.get_visible()) == 2   # the two gaps, hatched
    assert {text.get_text() for text in ax.texts} >= {"not reported", "diverged"}
    assert "0" not in {text.get_text() for text in ax.texts}
    fig.canvas.draw()
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes.x1


HISTORY = long_history({"lr=0.01": [{"epoch": 1, "test_accuracy": 0.5}, {"epoch": 2, "test_accuracy": 0.6},
                                     {"epoch": 3, "test_accuracy": 0.62}],
                         "lr=1": [{"epoch": 1, "test_accuracy": 0.4}], "lr=10": []},
                        {"lr=0.01": None, "lr=1": 2, "lr=10": 1}, "epoch", ["test_accuracy"])


def test_a_long_title_wraps_within_the_figure():
    fig = plotting.run_curves(HISTORY, "epoch", "test_accuracy", ylabel="test accuracy",
                              title="cnn3: test accuracy per epoch, " + "a long real data set description " * 3)
    fig.canvas.draw()
    title = fig.axes[0].title
    assert "\n" in title.get_text()
    assert title.get_window_extent().x1 <= fig.bbox.x1 and title.get_window_extent().x0 >= 0


def test_every_diverged_run_is_marked_in_its_own_colour_on_whole_epochs():
    """A run that diverged after some epochs is marked as well as one that diverged in its first."""
    fig = plotting.run_curves(HISTORY, "epoch", "test_accuracy", title="t", ylabel="test accuracy")
    ax = fig.axes[0]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["lr=0.01", "lr=1 (diverged at epoch 2)", "lr=10 (diverged at epoch 1)"]
    marks = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert sorted(line.get_xdata()[0] for line in marks) == [1, 2]
    colours = {matplotlib.colors.to_hex(line.get_color()) for line in ax.get_lines()}
    assert len(colours) == 3
    one_epoch = plotting.run_curves([row for row in HISTORY if row["epoch"] == 1], "epoch", "test_accuracy",
                                    title="t", ylabel="test accuracy")
    for figure in (fig, one_epoch):
        figure.canvas.draw()
        assert all(float(tick).is_integer() for tick in figure.axes[0].get_xticks())


def test_values_spanning_decades_are_drawn_on_a_log_axis():
    exploding = plotting.curves([1, 2, 3], {"a": [1.0, 0.9, 0.8], "b": [1.0, 37.0, 400.0]}, title="t",
                                xlabel="epoch", ylabel="loss")
    calm = plotting.curves([1, 2, 3], {"a": [1.0, 0.9, 0.8], "b": [1.0, 2.0, None]}, title="t",
                           xlabel="epoch", ylabel="loss")
    assert exploding.axes[0].get_yscale() == "log" and calm.axes[0].get_yscale() == "linear"
