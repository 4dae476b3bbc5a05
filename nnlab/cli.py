"""The shared entry point of every stage script."""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Callable

from nnlab.errors import NnlabError

#: Wall time and peak memory of every stage run, one JSON line each (git-ignored). They change
#: from run to run, so they never go into a stage's outputs, where they would dirty git and dvc.lock.
RUN_LOG = Path("logs/stage_runs.jsonl")


def stage_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    return parser


def record_run(seconds: float) -> None:
    """Print this stage run's wall time and peak memory, and append them to :data:`RUN_LOG`."""
    stage = " ".join([Path(sys.argv[0]).stem, *sys.argv[1:]])
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(f"{stage}: {seconds:.1f} s, peak memory {peak_mib:.0f} MiB")
    try:
        RUN_LOG.parent.mkdir(exist_ok=True)
        with RUN_LOG.open("a", encoding="utf-8") as log:
            log.write(json.dumps({"stage": stage, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                  "seconds": round(seconds, 2), "peak_rss_mib": round(peak_mib, 1)}) + "\n")
    except OSError as exc:  # a read-only checkout still runs its stages
        print(f"warning: {RUN_LOG}: not written ({exc.strerror or exc})", file=sys.stderr)


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run a stage's ``main``; user errors become one line on stderr and exit 2."""
    started = time.perf_counter()
    try:
        main(argv)
    except NnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: no outputs were written", file=sys.stderr)
        sys.exit(130)
    record_run(time.perf_counter() - started)
