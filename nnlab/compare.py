"""Compare experiments in a terminal: ``python -m nnlab.compare``.

``dvc exp show`` has a column for every params key and metric (over 400 here), so
in a terminal of 200 columns nothing can be read. This view reads
``dvc exp show --json`` and prints one row per experiment with what matters:

- its name;
- the params it changed against its baseline commit;
- the headline figure of each metrics file that differs from the baseline
  (test accuracy, or a study's best test accuracy), with the data ``source`` the
  figure was computed on (synthetic or real) beside it;
- the figures that are **stale**: metrics whose stage did not run after what it
  depends on changed. An experiment that names a training stage as its target
  (``dvc exp run -S ... mlp_moons``) retrains the model but leaves its evaluate
  stage, and so ``metrics/mlp_moons.json``, as they were; so does a targeted run
  after a change of a shared key (``train.seed``) for every other model. Such a
  figure is marked, never shown as the experiment's own.

Staleness is read from each experiment's own commit, as ``dvc status`` would read
its workspace: a stage is stale when a params value it recorded in ``dvc.lock``
differs from ``params.yaml``, when a dependency's recorded hash differs from the
file in git or from the hash its producing stage recorded, or when a stage
upstream of it is stale.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from nnlab.errors import NnlabError

WORKSPACE = "workspace"


def _yaml(text: bytes):
    """Parsed as DVC parses it (YAML 1.2: ``1e-08`` is a number, which PyYAML reads as a string)."""
    return YAML(typ="safe").load(text)


class Revision:
    """Files of one git revision, or of the workspace, as bytes (None where absent)."""

    def __init__(self, repo: Path, rev: str):
        self.repo, self.rev = repo, rev
        self._tracked: set[str] | None = None
        self._read: dict[str, bytes | None] = {}   # every stage depends on nnlab/cli.py: read it once

    def tracked(self) -> set[str]:
        if self._tracked is None:
            args = ["ls-files"] if self.rev == WORKSPACE else ["ls-tree", "-r", "--name-only", self.rev]
            listing = subprocess.run(["git", *args], cwd=self.repo, capture_output=True, text=True, check=True)
            self._tracked = set(listing.stdout.splitlines())
        return self._tracked

    def read(self, path: str) -> bytes | None:
        if path not in self._read:
            self._read[path] = self._load(path)
        return self._read[path]

    def _load(self, path: str) -> bytes | None:
        if self.rev == WORKSPACE:
            file = self.repo / path
            return file.read_bytes() if file.is_file() else None
        if path not in self.tracked():
            return None
        return subprocess.run(["git", "show", f"{self.rev}:{path}"], cwd=self.repo, capture_output=True,
                              check=True).stdout

    @functools.cached_property
    def lock_stages(self) -> dict[str, dict]:
        """The stages its dvc.lock records (none without one)."""
        text = self.read("dvc.lock")
        return ((_yaml(text) or {}).get("stages", {})) if text else {}


def _lookup(tree, dotted: str):
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return KeyError
        tree = tree[key]
    return tree


def stale_stages(revision: Revision) -> dict[str, str]:
    """Stage -> why its recorded outputs do not belong to this revision's params and code."""
    stages = revision.lock_stages
    params_text = revision.read("params.yaml")
    if not stages or params_text is None:
        return {}
    params = _yaml(params_text) or {}
    producer = {out["path"]: (name, out.get("md5")) for name, stage in stages.items() for out in stage.get("outs", [])}
    reasons: dict[str, str] = {}
    for name, stage in stages.items():
        for key, value in (stage.get("params") or {}).get("params.yaml", {}).items():
            if _lookup(params, key) != value:
                reasons[name] = f"{key} changed"
                break
        for dep in stage.get("deps", []) if name not in reasons else ():
            path, recorded = dep["path"], dep.get("md5")
            if path in producer:
                current = producer[path][1]
            else:
                content = revision.read(path)
                current = None if content is None else hashlib.md5(content).hexdigest()
                if content is None:   # a folder or a file outside git: only its producer could say
                    continue
            if current != recorded:
                reasons[name] = f"{path} changed"
                break
    upstream = {name: {producer[dep["path"]][0] for dep in stage.get("deps", []) if dep["path"] in producer}
                for name, stage in stages.items()}
    changed = True
    while changed:   # a stage downstream of a stale one is stale too
        changed = False
        for name, before in upstream.items():
            if name not in reasons:
                stale_before = sorted(before & set(reasons))
                if stale_before:
                    reasons[name] = f"{stale_before[0]} is stale"
                    changed = True
    return reasons


def producers(revision: Revision) -> dict[str, str]:
    """Output path -> the stage that recorded it in the revision's dvc.lock."""
    return {out["path"]: name for name, stage in revision.lock_stages.items() for out in stage.get("outs", [])}


def flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def headline(metrics: dict) -> str:
    """A metrics file's headline: test accuracy (a study's best), `diverged` where it blew up."""
    test = metrics.get("test") or {}
    best = metrics.get("best") or {}
    if metrics.get("diverged") is True:
        value = "diverged"
    elif "accuracy" in test:
        value = f"test acc {_number(test['accuracy'])}"
    elif "test_accuracy" in best:
        value = f"best test acc {_number(best['test_accuracy'])}"
    else:
        value = ", ".join(f"{k} {_number(v)}" for k, v in flatten(metrics).items() if k != "source")
    return f"{value} [{metrics.get('source', 'source unknown')}]"


def _number(value) -> str:
    return "null" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _data(rev: dict) -> dict:
    return rev.get("data") or {}


def _metrics(rev: dict) -> dict:
    return {path: (entry or {}).get("data") or {} for path, entry in (_data(rev).get("metrics") or {}).items()}


def _params(rev: dict) -> dict:
    return flatten(((_data(rev).get("params") or {}).get("params.yaml") or {}).get("data") or {})


def rows(exp_show: list[dict], repo: Path) -> list[list[str]]:
    """[experiment, changed params, changed figures, stale] for each baseline commit and experiment."""
    table = []
    for index, baseline in enumerate(exp_show):
        # The workspace is compared with the commit it is on, the next entry.
        base = exp_show[index + 1] if baseline.get("rev") == WORKSPACE and index + 1 < len(exp_show) else baseline
        base_params, base_metrics = _params(base), _metrics(base)
        rev = _data(baseline).get("rev") or baseline.get("rev")
        label = WORKSPACE if baseline.get("rev") == WORKSPACE else f"{baseline.get('name') or 'commit'} ({rev[:7]})"
        runs = [(label, baseline)]
        for experiment in baseline.get("experiments") or []:
            for exp_rev in experiment.get("revs") or []:
                runs.append((exp_rev.get("name") or exp_rev["rev"][:7], exp_rev))
        for name, run in runs:
            table.append(_row(name, run, base_params, base_metrics, repo, is_baseline=run is base))
    return table


def _row(name: str, run: dict, base_params: dict, base_metrics: dict, repo: Path, *, is_baseline: bool) -> list[str]:
    if run.get("error") or not run.get("data"):
        return [name, "", f"no results: {(run.get('error') or {}).get('msg', 'not run yet')}", ""]
    params = _params(run)
    changed = [f"{key}={params.get(key)}" for key in sorted(set(params) | set(base_params))
               if params.get(key) != base_params.get(key)]
    revision = Revision(repo, WORKSPACE if run.get("rev") == WORKSPACE else _data(run)["rev"])
    stale = stale_stages(revision)
    made_by = producers(revision)
    figures = []
    for path, metrics in sorted(_metrics(run).items()) if not is_baseline else ():
        if made_by.get(path) not in stale and metrics != base_metrics.get(path):
            was = f" (commit: {headline(base_metrics[path])})" if path in base_metrics else ""
            figures.append(f"{Path(path).stem}: {headline(metrics)}{was}")
    not_rescored = sorted(Path(path).stem if path.startswith("metrics/") else path
                          for path, stage in made_by.items()
                          if stage in stale and (path.startswith("metrics/") or path == "RESULTS.md"))
    return [name, "\n".join(changed) or "–", "\n".join(figures) or "–", ", ".join(not_rescored) or "–"]


def render(table: list[list[str]], width: int) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    view = Table(show_lines=True, expand=False)
    view.add_column("Experiment", no_wrap=True)
    view.add_column("Params it changed", overflow="fold")
    view.add_column(Text("Figures that differ from its commit [data source]"), overflow="fold")
    view.add_column("Stale: not recomputed for its params", overflow="fold", max_width=40)
    for row in table:
        view.add_row(*map(Text, row))   # Text: "[synthetic]" is not markup
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)
    console.print(view)
    return console.export_text()


def exp_show_json(repo: Path, extra: list[str]) -> list[dict]:
    result = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json", *extra], cwd=repo,
                            capture_output=True, text=True)
    if result.returncode:
        raise NnlabError(f"dvc exp show failed: {result.stderr.strip().splitlines()[-1:] or result.returncode}")
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nnlab.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=shutil.get_terminal_size((200, 40)).columns,
                        help="columns to fit (default: the terminal's)")
    parser.add_argument("--all-commits", action="store_true", help="experiments of every commit (dvc exp show -A)")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    table = rows(exp_show_json(repo, ["-A"] if args.all_commits else []), repo)
    sys.stdout.write(render(table, args.width))


if __name__ == "__main__":
    try:
        main()
    except NnlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
