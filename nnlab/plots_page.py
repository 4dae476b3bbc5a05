"""The HTML template that makes plain ``dvc plots show`` and ``dvc plots diff`` render offline.

DVC's default page loads Vega, Vega-Lite and vega-embed from a CDN in its
``{scripts}`` placeholder, so every chart is blank on a machine without
internet. ``.dvc/config`` sets ``plots.html_template`` to a template of ours
instead: it inlines those libraries from the ``vl-convert-python`` package
installed with the project and has no ``{scripts}`` placeholder. DVC fills its
``{plot_divs}`` with the charts as usual.

The libraries take about 900 kB, so the template is built, not committed:
``make venv`` (and so ``make repro`` and ``make test``) runs

    python -m nnlab.plots_page

which writes it where ``.dvc/config`` says, and our chart templates
(:mod:`nnlab.vega_templates`) into ``.dvc/plots/``, where DVC finds the
templates that dvc.yaml names. Without it ``dvc plots show`` fails with "HTML
template has to contain '{plot_divs}'".
"""
from __future__ import annotations

import argparse
import configparser
import functools
from pathlib import Path

from nnlab.cli import run
from nnlab.errors import NnlabError
from nnlab.vega_templates import write_templates

# Where DVC looks for the templates dvc.yaml names (`dvc plots templates` writes there too).
TEMPLATES_FOLDER = "plots"
# DVC's built-in vega templates declare the Vega-Lite 5 schema.
VEGA_LITE_MAJOR = "5"

PAGE_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>nnlab plots</title>
<script>
{bundle}
</script>
<style>
  body {{ font-family: sans-serif; }}
  body > div {{ margin: 1em 0; }}
</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


class PlotsTemplateError(NnlabError):
    """The DVC configuration names no plots template."""


def _vega_lite_version() -> str:
    import vl_convert

    versions = [v for v in vl_convert.get_vegalite_versions() if v.split(".")[0] == VEGA_LITE_MAJOR]
    return max(versions, key=lambda v: tuple(int(part) for part in v.split(".")))


@functools.cache
def chart_library() -> str:
    """Vega, Vega-Lite and vega-embed as one classic script that sets ``window.vegaEmbed``."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=_vega_lite_version())
    # A literal "</script" would end the inline <script> element early; "<\/" means the same to JavaScript.
    return bundle.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def html_template() -> str:
    """The page template with the chart library inlined."""
    return PAGE_TEMPLATE.format(bundle=chart_library())


def configured_template(repo: Path = Path(".")) -> Path:
    """Where ``repo``'s committed ``.dvc/config`` puts the template (DVC resolves it from ``.dvc/``)."""
    dvc_dir = repo / ".dvc"
    config = configparser.ConfigParser()
    config.read(dvc_dir / "config", encoding="utf-8")
    name = config.get("plots", "html_template", fallback=None)
    if not name:
        raise PlotsTemplateError(f"{dvc_dir / 'config'}: no plots.html_template")
    return dvc_dir / name


def write_template(repo: Path = Path(".")) -> Path:
    """The page template and the chart templates; returns the page template's path."""
    path = configured_template(repo)
    path.write_text(html_template(), encoding="utf-8")
    write_templates(repo / ".dvc" / TEMPLATES_FOLDER)
    return path


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="python -m nnlab.plots_page",
        description="Write the offline HTML template that .dvc/config's plots.html_template names.",
    ).parse_args(argv)
    print(write_template())


if __name__ == "__main__":
    run(main)
