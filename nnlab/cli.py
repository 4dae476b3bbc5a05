"""What every stage script shares: its entry point (one-line errors, wall time and peak
memory of the run) and the progress of its long loops.

Progress: under a terminal, :class:`Progress` is a tqdm bar showing the
latest figures. Elsewhere (DVC's queue, CI, a pipe, a file) tqdm stays silent,
so it prints one line per :meth:`Progress.report` instead, such as::

    imdb_train epoch 3/10: train_loss 0.5321, test_loss 0.4012, test_accuracy 0.8125 | 12.3 s, about 28.7 s left

flushed at once, so that ``dvc queue logs -f`` shows each line as it comes.
The lines go to stdout only: no output file of a stage depends on them. (It
lives here, not in a module of its own, because every stage already depends
on this file in dvc.yaml.)
"""
from __future__ import annotations

import argparse
import json
import math
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


def peak_memory_mib() -> float:
    """This process's peak resident memory: Linux's ``VmHWM``, where ``ru_maxrss`` would also count
    the process that started it (Linux carries it across ``exec``: DVC's, a test worker's)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def record_run(seconds: float) -> None:
    """Print this stage run's wall time and peak memory, and append them to :data:`RUN_LOG`."""
    stage = " ".join([Path(sys.argv[0]).stem, *sys.argv[1:]])
    peak_mib = peak_memory_mib()
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


#: Fast loops with many checkpoints (the numpy models score every few steps)
#: print a line at most this often, so that their log stays readable.
FAST_LOOP_LINE_EVERY_S = 5.0


def _figure(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4g}"


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


class Progress:
    """``total`` units of work (batches, steps, runs) and checkpoints reported on the way.

    ``update(n)`` advances the bar; ``report(where, **figures)`` gives the
    figures at a checkpoint. ``desc`` None is silent: a run inside a study,
    whose progress the study reports. Without a terminal a report is one line, unless
    the last line is less than ``line_every_s`` old (the report that finishes
    the work is always printed if any was). ``lines_on_terminal`` also writes
    the lines above the bar, for checkpoints worth keeping on screen (a
    finished run of a study).
    """

    def __init__(self, total: int, desc: str | None, *, unit: str = "it", line_every_s: float = 0.0,
                 lines_on_terminal: bool = False) -> None:
        self.total, self.desc = total, desc
        self.line_every_s, self.lines_on_terminal = line_every_s, lines_on_terminal
        self.silent = desc is None
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, disable=True if self.silent else None)
        self.done = 0
        self.started = time.perf_counter()
        self.last_line: float | None = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(n)

    def report(self, where: str, **figures) -> None:
        if self.silent:
            return
        now = time.perf_counter()
        elapsed = now - self.started
        if self.bar.disable:
            finishing = self.done >= self.total and self.last_line is not None
            if self.last_line is not None and now - self.last_line < self.line_every_s and not finishing:
                return
            if self.last_line is None and elapsed < self.line_every_s:
                return
            self.last_line = now
            print(self._line(where, figures, elapsed), flush=True)
            return
        self.bar.set_postfix({name: _figure(value) for name, value in figures.items()}, refresh=False)
        if self.lines_on_terminal:
            self.bar.write(self._line(where, figures, elapsed))

    def _line(self, where: str, figures: dict, elapsed: float) -> str:
        values = ", ".join(f"{name} {_figure(value)}" for name, value in figures.items())
        timing = _seconds(elapsed)
        if 0 < self.done < self.total:
            timing += f", about {_seconds(elapsed * (self.total - self.done) / self.done)} left"
        return f"{self.desc} {where}: {values} | {timing}"

    def close(self) -> None:
        self.bar.close()
