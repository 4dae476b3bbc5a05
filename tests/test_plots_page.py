"""Plain `dvc plots show` and `dvc plots diff` render offline: through the
template that .dvc/config names, no script comes from the network, and in
headless Chromium every vega chart that `dvc plots show` knows draws its data
marks, a line chart a line for every series that has a point, and every PNG
plot is on the page."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from dvc_render.base import Renderer

pytest.register_assert_rewrite("pipeline_repo")
from conftest import ROOT  # noqa: E402
from pipeline_repo import clone_workspace, sh  # noqa: E402

from nnlab.plots_page import PlotsTemplateError, configured_template, html_template, write_template  # noqa: E402

pytest_plugins = ["pipeline_repo"]

# Debian's full browser or its headless shell (what .ci/run installs).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-headless-shell")
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Element:
    def __init__(self, tag: str, attrs: dict[str, str], parent: "Element | None") -> None:
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())


class TreeBuilder(HTMLParser):
    """The element tree of an HTML document (script and style text is not parsed as markup)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.root = self.current = Element("#document", {}, None)
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), self.current)
        self.current.children.append(element)
        if tag not in VOID_ELEMENTS:
            self.current = element

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Element(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        element = self.current
        while element.parent is not None and element.tag != tag:
            element = element.parent
        if element.parent is not None:
            self.current = element.parent


def parse(html: str) -> Element:
    return TreeBuilder(html).root


def remote_resources(html: str) -> list[str]:
    return [value for element in parse(html).iter() for name, value in element.attrs.items()
            if name in ("src", "href") and value and value.split(":")[0].lower() in ("http", "https")
            and element.tag in ("script", "link", "img", "iframe")]


# Vega's SVG classes of the marks that draw data; rules, text, axes and legends do not.
DATA_MARKS = ("mark-line", "mark-rect", "mark-symbol", "mark-area")


def drawn_marks(chart: Element) -> dict[str, dict[str, int]]:
    """``{mark class: {layer: shapes drawn}}`` of the data marks inside a vega-embed container.
    Vega draws a line, a rect or a point as a path with a non-empty ``d``, and a series of a
    layer in a group of its own that carries the layer's name as a class."""
    drawn = {name: {} for name in DATA_MARKS}
    for group in chart.iter():
        kind = next((name for name in DATA_MARKS if name in group.classes()), None)
        if group.tag == "g" and "role-mark" in group.classes() and kind:
            layer = " ".join(sorted(group.classes() - {kind, "role-mark"}))
            shapes = sum(1 for shape in group.iter() if shape.tag == "path" and shape.attrs.get("d"))
            drawn[kind][layer] = drawn[kind].get(layer, 0) + shapes
    return drawn


def series_with_points(spec: dict) -> int:
    """How many lines a DVC line chart should draw: its (revision, y column or file) series that
    have a y value; 0 for the other templates."""
    if '"mark": "line"' not in json.dumps(spec) and '"type": "line"' not in json.dumps(spec):
        return 0
    y = re.search(r'"y": \{"field": "([^"]+)"', json.dumps(spec)).group(1)
    return len({(value.get("rev"), value.get("field"), value.get("filename")) for value in spec["data"]["values"]
                if value.get(y) not in ("", None)})


@pytest.fixture(scope="module")
def repo(baseline, tmp_path_factory) -> Path:
    """A clone of the reproduced baseline with the template built, as `make venv` builds it."""
    repo = clone_workspace(baseline.path, tmp_path_factory.mktemp("plots") / "workspace")
    write_template(repo)
    return repo


@pytest.fixture(scope="module")
def plots(repo):
    """The page plain `dvc plots show` writes, and the plots DVC reports for it."""
    sh("dvc", "plots", "show", cwd=repo)
    page = repo / "dvc_plots" / "index.html"
    declared = json.loads(sh("dvc", "plots", "show", "--json", cwd=repo))["data"]
    kinds = {name: {renderer["type"] for renderer in renderers} for name, renderers in declared.items()}
    if not kinds:
        pytest.skip("dvc.yaml declares no plots")
    lines = {name: sum(series_with_points(renderer["content"]) for renderer in renderers if renderer["type"] == "vega")
             for name, renderers in declared.items()}
    return page, kinds, lines


def test_template_loads_nothing_from_the_network():
    template = html_template()
    assert remote_resources(template) == []
    assert "{plot_divs}" in template and "{scripts}" not in template
    assert "window.vegaEmbed" in template


def test_makefile_builds_the_configured_template():
    makefile = (ROOT / "Makefile").read_text()
    built = re.search(r"^PLOTS_TEMPLATE := (\S+)$", makefile, re.MULTILINE).group(1)
    assert ROOT / built == configured_template(ROOT)


def test_a_config_without_template_is_one_clear_error(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
    with pytest.raises(PlotsTemplateError, match="no plots.html_template"):
        configured_template(tmp_path)


def test_page_loads_nothing_from_the_network(plots):
    page, _, _ = plots
    html = page.read_text(encoding="utf-8")
    assert remote_resources(html) == []
    assert "cdn.jsdelivr.net" not in html


def test_plots_diff_uses_the_offline_template(repo, plots):
    _, kinds, _ = plots
    sh("dvc", "plots", "diff", "HEAD", "--out", "diff_plots", cwd=repo)
    html = (repo / "diff_plots" / "index.html").read_text(encoding="utf-8")
    assert remote_resources(html) == [] and "window.vegaEmbed" in html
    assert all(Renderer.remove_special_chars(name) in html for name in kinds)


def chromium() -> str:
    """The browser; under CI (which installs it, see .ci/run) its absence is a failure, not a skip (tests/conftest.py)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium-headless-shell)")
    return CHROMIUM


def test_every_chart_draws_offline_in_chromium(plots, tmp_path):
    browser = chromium()
    page, kinds, lines = plots
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}",
         "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    elements = {element.attrs["id"]: element for element in parse(result.stdout).iter() if element.attrs.get("id")}

    embedded = [element for element in elements.values() if "vega-embed" in element.classes()]
    assert len(embedded) == sum("vega" in types for types in kinds.values())
    for name, types in kinds.items():
        container = elements.get(Renderer.remove_special_chars(name))
        assert container is not None, f"plot {name} is not on the page"
        if "vega" in types:
            assert "vega-embed" in container.classes(), f"vega-embed did not run for {name}"
            marks = drawn_marks(container)
            assert sum(sum(layers.values()) for layers in marks.values()) > 0, f"chart {name} drew no data marks"
            # DVC's line templates layer the raw lines under the smoothed ones, which a one-point
            # series (a tiny run of one epoch) cannot draw: some layer draws every series.
            assert max(marks["mark-line"].values(), default=0) >= lines[name], \
                f"chart {name}: its line layers drew {marks['mark-line']} of its {lines[name]} series"
        if "image" in types:
            images = [element.attrs["src"] for element in container.iter() if element.tag == "img"]
            assert images and all((page.parent / src).stat().st_size > 0 for src in images), name
