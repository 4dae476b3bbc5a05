"""Back to the last commit without losing a model: ``python -m nnlab.restore``.

``git restore params.yaml dvc.lock RESULTS.md metrics plots && dvc checkout`` goes back to
the last commit where DVC's cache holds every output the committed ``dvc.lock`` names. Where
it does not (this machine retrained other bytes than the commit's, or the cache was never
filled: a fresh clone without ``dvc pull``), ``dvc checkout`` deletes the workspace's output
and reports an error about it. This command restores the same git files, checks out only the
outputs whose committed version the cache holds, leaves every other one as it is, and names
them in one line with the command that rebuilds them. Exit status: 0 when the workspace is at the
last commit, 1 when outputs were kept that are not (``dvc status`` lists them as changed), 2
when git or DVC failed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

#: What a run writes that git keeps (DVC-cached outputs are checked out from DVC's cache).
GIT_FILES = ("params.yaml", "dvc.lock", "RESULTS.md", "metrics", "plots")


def cached(out) -> bool:
    """Whether DVC's cache holds the version of ``out`` that the restored ``dvc.lock`` names,
    every file of it for a folder."""
    oid = out.hash_info.value if out.hash_info else None
    if not oid:
        return False
    manifest = out.cache.oid_to_path(oid)
    try:
        if not out.hash_info.isdir:
            return os.path.isfile(manifest)
        with open(manifest) as listing:
            entries = json.load(listing)
    except (OSError, ValueError):
        return False
    return all(os.path.isfile(out.cache.oid_to_path(entry["md5"])) for entry in entries)


def main() -> int:
    restored = subprocess.run(["git", "restore", *GIT_FILES])
    if restored.returncode != 0:
        print("error: git restore failed: nothing was checked out", file=sys.stderr)
        return 2
    from dvc.repo import Repo

    with Repo(".") as repo:
        present, missing = [], []
        for out in repo.index.outs:
            if out.use_cache:
                (present if cached(out) else missing).append(out)
    if present:
        checkout = subprocess.run(["dvc", "checkout", "--quiet", *map(str, present)])
        if checkout.returncode != 0:
            print("error: dvc checkout failed (above); the outputs it names may be missing", file=sys.stderr)
            return 2
    if missing:
        stages = " ".join(dict.fromkeys(out.stage.addressing for out in missing))
        print(f"kept as they are, since DVC's cache lacks their committed versions (another machine trained "
              f"them, or `dvc pull` never ran): {', '.join(str(out) for out in missing)}; "
              f"`dvc repro {stages}` rebuilds them", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
