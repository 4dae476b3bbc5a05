"""Stage `report`: RESULTS.md, every headline figure beside the source report's.

Reads references.yaml, the metrics files and study tables it names, and the params
it names: `data` (which source produced each figure) and the settings that label
each row and decide whether the report's figure is comparable; writes RESULTS.md.
"""
from __future__ import annotations

from pathlib import Path

from nnlab.cli import run, stage_parser
from nnlab.io import StageOutputs
from nnlab.params import load_params
from nnlab.report import build_rows, load_references, render


def main(argv=None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = load_params(args.params)
    for name in ("mnist", "imdb", "mri"):   # checked before any file is read, so a typo is named as such
        params.section("data").section(name).str("source")
    rows = build_rows(load_references(Path("references.yaml")), params.as_dict(), Path("."))
    with StageOutputs() as out:
        out.text("RESULTS.md", render(rows))
    print(f"RESULTS.md: {len(rows)} figures")


if __name__ == "__main__":
    run(main)
