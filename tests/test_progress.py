"""Progress without a terminal (pytest captures stdout): a line per report, with elapsed
time and an estimate of what remains; fast loops throttled; runs inside a study silent."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT, venv_env
from nnlab import cli
from nnlab.cli import Progress


def test_a_line_per_report_with_elapsed_and_remaining_time(capsys):
    with Progress(4, "demo", unit="batch") as progress:
        for epoch in (1, 2):
            progress.update(2)
            progress.report(f"epoch {epoch}/2", loss=0.123456, accuracy=None, diverged=False)
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"demo epoch 1/2: loss 0\.1235, accuracy -, diverged false \| [\d.]+ s, about [\d.]+ s left",
                        lines[0])
    assert re.fullmatch(r"demo epoch 2/2: .* \| [\d.]+ s", lines[1]) and len(lines) == 2


def test_fast_loops_print_at_most_every_few_seconds_and_their_last_report(capsys, monkeypatch):
    clock = iter([0.0, 1.0, 6.0, 7.0, 8.0])
    monkeypatch.setattr(cli.time, "perf_counter", lambda: next(clock))
    with Progress(3, "fast", line_every_s=5.0) as progress:
        for step in (1, 2, 3):
            progress.update()
            progress.report(f"step {step}", loss=1.0)
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == ["fast step 2", "fast step 3"]


def test_a_loop_shorter_than_its_line_interval_prints_nothing(capsys):
    with Progress(2, "short", line_every_s=60.0) as progress:
        progress.update(2)
        progress.report("step 2", loss=1.0)
    assert capsys.readouterr().out == ""


def test_no_desc_is_silent(capsys):
    with Progress(1, None) as progress:
        progress.update()
        progress.report("step 1", loss=1.0)
    assert capsys.readouterr().out == ""


def test_a_stage_logs_its_own_peak_memory_not_that_of_the_process_that_started_it(tmp_path):
    """A stage run by a large process (DVC, a test worker) reports its own peak: ``ru_maxrss``, which
    Linux carries across ``exec``, would report the 400 MiB its parent held before starting it."""
    child = "from nnlab import cli\ncli.record_run(0.5)\n"
    parent = ("import subprocess, sys\nheld = bytearray(400 * 1024 * 1024)\nheld[::4096] = b'x' * len(held[::4096])\n"
              f"sys.exit(subprocess.run([sys.executable, '-c', {child!r}]).returncode)\n")
    result = subprocess.run([sys.executable, "-c", parent], cwd=tmp_path, env={**venv_env(), "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    peak = float(re.fullmatch(r"-c: 0\.5 s, peak memory (\d+) MiB\n", result.stdout).group(1))
    logged = json.loads((tmp_path / "logs" / "stage_runs.jsonl").read_text())
    assert logged["peak_rss_mib"] == pytest.approx(peak, abs=1) and 5 < peak < 200, logged
