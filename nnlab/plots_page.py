"""The project's plots command: ``dvc_plots/index.html`` that renders with no network.

``dvc plots show`` writes a page whose ``<head>`` loads Vega, Vega-Lite and
vega-embed from a CDN, so every chart is blank on a machine without internet.
This command has DVC fill an HTML template of ours instead: the template
inlines those libraries from the ``vl-convert-python`` package installed with
the project (nothing vendored in the repository) and has no ``{scripts}``
placeholder, where DVC would put its CDN tags. DVC still does everything
else: it reads the ``plots:`` of ``dvc.yaml``, fills its vega templates and
copies PNG figures next to the page.

    python -m nnlab.plots_page                        # the workspace, like `dvc plots show`
    python -m nnlab.plots_page HEAD exp-1a2b3 exp-4c5d6   # compare revisions, like `dvc plots diff`

The page is self-contained apart from the copied images in ``<out>/static/``.
"""
from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
from pathlib import Path

from nnlab.cli import run
from nnlab.errors import NnlabError

# DVC's built-in vega templates declare the Vega-Lite 5 schema.
VEGA_LITE_MAJOR = "5"

PAGE_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
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


class PlotsPageError(NnlabError):
    """DVC could not write the plots page."""


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
    """An HTML template for ``dvc plots show --html-template`` with the chart library inlined."""
    return PAGE_TEMPLATE.format(bundle=chart_library())


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def write_page(out: Path, revisions: list[str], repo: Path = Path(".")) -> Path:
    """Have DVC render the plots of ``repo`` (or the diff of ``revisions``) into ``out/index.html``."""
    command = ["plots", "diff", *revisions] if revisions else ["plots", "show"]
    page = (repo / out / "index.html").resolve()
    page.unlink(missing_ok=True)  # so that a stale page never passes for a new one
    with tempfile.TemporaryDirectory(prefix="nnlab-plots-") as tmp:
        template = Path(tmp) / "template.html"
        template.write_text(html_template(), encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "dvc", *command, "--html-template", str(template), "--out", str(out)],
            cwd=repo, capture_output=True, text=True,
        )
    if result.returncode != 0:
        raise PlotsPageError(f"dvc {' '.join(command)} failed in {repo.resolve()}: {_last_line(result.stderr)}")
    if not page.is_file():
        raise PlotsPageError(f"no plots to show in {repo.resolve()}: {_last_line(result.stderr) or 'dvc.yaml declares none'}")
    return page


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m nnlab.plots_page",
        description="Write the plots of dvc.yaml as an HTML page that renders offline.")
    parser.add_argument("revisions", nargs="*",
                        help="git revisions or experiment names to compare (default: the workspace)")
    parser.add_argument("-o", "--out", type=Path, default=Path("dvc_plots"),
                        help="directory for index.html and its images (default: dvc_plots)")
    args = parser.parse_args(argv)
    page = write_page(args.out, args.revisions)
    print(page.as_uri())


if __name__ == "__main__":
    run(main)
