"""Run one dvc stage command and append its wall time and peak memory to a JSON-lines log.

    python -m bench.stage_meter LOG STAGE 'python -m stages.generate'

`bench.run --repro` prefixes every stage command with this in its throwaway
copy of the repository. Peak memory is the largest resident set of the
command's process tree (``RUSAGE_CHILDREN``, which Linux reports in KiB).
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    log, stage, command = argv
    start = time.perf_counter()
    code = subprocess.run(command, shell=True).returncode
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"stage": stage, "command": command, "seconds": round(seconds, 1),
                                 "peak_rss_mib": round(peak_kib / 1024, 1), "exit_code": code}) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
