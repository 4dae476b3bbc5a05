"""Figures say what they show: a diverged run is a marked gap, not a 0 bar; the legend covers
no bar; a long title wraps instead of being clipped."""
from nnlab import plotting


def test_text_values_are_marked_gaps_and_the_legend_is_outside_the_axes():
    fig = plotting.bar_chart({"a": {"ours": 0.7, "report": "not reported"}, "b": {"ours": "diverged", "report": 0.1}},
                             title="t", ylabel="accuracy")
    ax = fig.axes[0]
    visible = sorted(round(bar.get_height(), 3) for bar in ax.patches if bar.get_visible())
    assert visible == [0.1, 0.7]
    assert {text.get_text() for text in ax.texts} >= {"not reported", "diverged"}
    assert "0" not in {text.get_text() for text in ax.texts}
    fig.canvas.draw()
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= axes.x1


def test_a_long_title_wraps_within_the_figure():
    fig = plotting.run_curves({"lr=0.01": ([1, 2], [0.5, 0.6]), "lr=10": None},
                              title="cnn3: test accuracy per epoch, " + "a long real data set description " * 3,
                              xlabel="epoch", ylabel="test accuracy")
    fig.canvas.draw()
    title = fig.axes[0].title
    assert "\n" in title.get_text()
    assert title.get_window_extent().x1 <= fig.bbox.x1 and title.get_window_extent().x0 >= 0
    assert "lr=10 (diverged)" in [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
