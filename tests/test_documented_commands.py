"""Every command the README and docs/ show runs.

The ``dvc …``, ``make …`` and ``python -m …`` commands of every fenced ``sh`` block
of README.md and docs/**/*.md (comments stripped, ``&&`` chains split) run once each,
in the order the documents first give them, in a throw-away clone of the tiny-params
baseline (tests/pipeline_repo.py). What is long, or what another test already runs,
gets a cheap equivalent (``check_for``), so that this file stays near 40 s of the
suite's 5-minute budget on 2 cores:

- ``make X`` → ``make -n X`` (``make repro`` must then show ``dvc repro``, which runs
  as documented: nothing to do in the reproduced clone; a ``dvc exp run`` that a make
  target would run, such as ``make real``'s, gets the static check);
- ``dvc exp run``: the README's first runs on the tiny params, named so that it is the
  experiment ``<exp>`` stands for, and must record its own figures
  (:func:`check_experiment`); every other one gets the static check and the plan check
  (:func:`plan_problems`: what its ``-S`` keys make DVC rerun reaches the metrics and
  RESULTS.md, which a target could cut short). They are the same mechanism on other
  keys, and running each (a minute or more apiece on two cores) would not fit the suite's
  budget. ``--dry`` is no cheaper: DVC 3.67 runs a dry experiment in a temporary copy
  without the cached data, where it fails. ``--queue``/``--run-all`` and ``dvc queue …``
  run in tests/test_experiments.py;
- ``dvc repro -f``/``--force``: the static check (forced reruns: tests/test_faults.py);
- the variants in ``PROVEN``, run by other tests or by a twin here: the static check;
- a command marked ``# needs: network`` or ``# needs: your data``: the static check;
- ``python -m bench.run`` (minutes) → ``--help``.

The static check is what DVC checks before it runs anything: its own argument parser,
the ``-S`` overrides through its hydra sweep parser (and a sweep only with ``--queue``),
every overridden key present in params.yaml, and every target a stage of dvc.yaml.
Placeholders get real values: ``<exp>``/``<branch>`` the experiment and a branch made
here, ``path/to/slice.jpg`` a Kaggle slice from ../shared/data at the size the
baseline's MRI models take (skipped when absent), ``digit.png`` a test digit.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SHARED_DATA, venv_env

pytest.register_assert_rewrite("pipeline_repo")
from pipeline_repo import GIT_ENV, clone_workspace, expanded_stages, stage_outputs  # noqa: E402

pytest_plugins = ["pipeline_repo"]

README_MAX_LINES = 250
PREFIXES = ("dvc ", "make ", "python -m ", "git restore ")
#: Commands that change the workspace back: each occurrence runs, where it stands in the docs.
EVERY_TIME = ("git restore ", "dvc checkout", "python -m nnlab.restore")
EXPERIMENT = "docs-exp"
BRANCH = "docs-branch"
#: Commands that reach a remote or download something must say so in the docs.
NETWORK = re.compile(r"^dvc (push|pull|fetch)\b|^dvc exp (push|pull|list) \S|source=download"
                     r"|^dvc remote add .*(s3|gs|azure|ssh|https?)://")


@dataclass(frozen=True)
class Command:
    source: str      # file:line
    text: str
    needs: str       # "" or what the docs say it needs: "network", "your data"
    comment: str = ""


#: Variants whose run other tests prove, or a twin of a command run here: the static check
#: suffices (prefixes of the documented text, with the test that runs them).
PROVEN = {
    "dvc metrics diff HEAD": "the plain `dvc metrics diff` here; tests/test_experiments.py",
    "dvc exp show --only-changed --sort-by": "tests/test_experiments.py (dvc exp show)",
    "dvc exp show --only-changed --md": "tests/test_experiments.py (dvc exp show)",
    "dvc exp show --keep": "tests/test_experiments.py (dvc exp show)",
    "dvc plots diff --out": "`dvc plots diff main <exp>` here; tests/test_plots_page.py",
    "dvc queue ": "tests/test_experiments.py (the queue, queue logs, queue stop)",
    "dvc exp apply": "tests/test_experiments.py (exp apply brings back the model)",
}


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def strip_comment(line: str) -> tuple[str, str]:
    """(the command, its comment): the first ``#`` outside quotes that starts a word."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def documented_commands() -> list[Command]:
    commands = []
    for path in documents():
        in_sh = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                in_sh = not in_sh and stripped[3:].strip() == "sh"
                continue
            if not in_sh:
                continue
            text, comment = strip_comment(stripped)
            match = re.search(r"needs: ([a-z ]+?)(?:\s*[;(,]|$)", comment)
            for part in text.split("&&"):
                part = part.strip()
                if part.startswith(PREFIXES) or part in ("dvc", "make"):
                    commands.append(Command(f"{path.relative_to(ROOT)}:{number}", part,
                                            match.group(1).strip() if match else "", comment))
    return commands


def stage_names(repo: Path) -> set[str]:
    return set(expanded_stages(repo))


def has_key(params: dict, dotted: str) -> bool:
    node = params
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def static_problems(argv: list[str], repo: Path, *, stale_said: bool = False) -> list[str]:
    """What DVC would refuse in ``dvc <argv>`` before running anything, and (for ``dvc exp run``)
    stages its targets would leave stale, unless its comment says so (``stale_said``)."""
    from dvc.cli import parse_args
    from dvc.utils.hydra import get_hydra_sweeps

    if ">" in argv:   # a shell redirection is not DVC's
        argv = argv[:argv.index(">")]
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            args = parse_args(argv)
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - DvcParserError or argparse's exit
        return [f"dvc's argument parser refused it ({type(exc).__name__}): {said.getvalue()[-500:]}"]
    problems = []
    overrides = getattr(args, "set_param", None) or []
    if overrides:
        try:
            sweeps = get_hydra_sweeps({"params.yaml": overrides})
        except Exception as exc:  # noqa: BLE001 - any refusal is the finding
            problems.append(f"-S overrides refused: {exc}")
        else:
            if len(sweeps) > 1 and not getattr(args, "queue", False):   # as dvc/repo/experiments/run.py
                problems.append("Sweep overrides can't be used without `--queue`")
        params = yaml.safe_load((repo / "params.yaml").read_text())
        for override in overrides:
            key = override.split("=", 1)[0].lstrip("+~")
            if not has_key(params, key):
                problems.append(f"-S {key}: no such key in params.yaml")
    if argv[:2] == ["exp", "run"]:
        stages = stage_names(repo)
        problems += [f"{target}: no such stage" for target in args.targets or [] if target not in stages]
        if overrides and not problems and not stale_said:
            problems += plan_problems(overrides, args.targets or [], repo)
    return problems


def plan_problems(overrides: list[str], targets: list[str], repo: Path) -> list[str]:
    """Whether the stages DVC reruns for ``-S`` changes of these keys (the stages that read them
    and everything downstream) all run with these targets: a target upstream of a model's
    evaluation or of the report leaves that model's metrics or RESULTS.md from the run before."""
    stages = expanded_stages(repo)
    maker = {out: name for name, stage in stages.items() for out in stage_outputs(stage)}
    upstream = {name: {maker[dep] for dep in stage.get("deps", []) if dep in maker} for name, stage in stages.items()}
    keys = [override.split("=", 1)[0].lstrip("+~") for override in overrides]

    def reads(stage: dict, key: str) -> bool:
        names = []
        for entry in stage.get("params", []):   # "key", or {params file: [keys]}
            names += [entry] if isinstance(entry, str) else [name for keys in entry.values() for name in keys]
        return any(key == name or key.startswith(name + ".") or name.startswith(key + ".") for name in names)

    rerun = {name for name, stage in stages.items() if any(reads(stage, key) for key in keys)}
    grown = True
    while grown:
        downstream = {name for name, before in upstream.items() if before & rerun} - rerun
        rerun |= downstream
        grown = bool(downstream)
    if not rerun:
        return [f"-S {', '.join(keys)}: no stage reads it, so nothing would rerun"]
    if not targets:
        return []
    reached = set(targets)
    frontier = set(targets)
    while frontier:
        frontier = {before for name in frontier for before in upstream[name]} - reached
        reached |= frontier
    left = sorted(rerun - reached)
    return [f"targets {targets} leave stale: {', '.join(left)}"] if left else []


def run(command: str, repo: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=repo, env={**venv_env(), **GIT_ENV},
                          capture_output=True, text=True, timeout=timeout)


def after(text: str, prefix: str, *extra: str) -> str:
    """``text`` with ``extra`` inserted after its leading ``prefix``."""
    assert text.startswith(prefix), (text, prefix)
    return " ".join([prefix, *extra]) + text[len(prefix):]


def check_for(command: Command, text: str, state: dict) -> tuple[str, str | list[str]]:
    """How a documented command (placeholders filled in) is checked: ("run", shell line) or
    ("static", argv) for the static check of ``dvc argv``."""
    words = shlex.split(text)
    if words[0] == "make":
        return "run", after(text, "make", "-n")
    if words[:3] == ["python", "-m", "bench.run"]:
        return "run", "python -m bench.run --help"
    if words[0] != "dvc":
        return "run", text
    argv = words[1:]
    if argv[:2] == ["exp", "run"]:
        if command.needs or "--queue" in argv or "--run-all" in argv or state.get("experiment") or "-n" in argv:
            return "static", argv
        state["experiment"] = True   # the README's first runs, as <exp>
        return "run", after(text, "dvc exp run", "-n", EXPERIMENT)
    if command.needs or text.startswith(tuple(PROVEN)) \
            or text in ("dvc exp show", "dvc exp show --only-changed"):
        return "static", argv
    if argv[0] == "repro" and {"-f", "--force"} & set(argv):
        return "static", argv
    return "run", text


def flat_params(repo: Path, rev: str) -> dict:
    from nnlab.compare import Revision, _yaml, flatten

    return flatten(_yaml(Revision(repo, rev).read("params.yaml")))


def experiment_rev(repo: Path, output: str) -> tuple[str, str]:
    """(name, commit) of the experiment a ``dvc exp run`` reports it ran."""
    return experiment_ref(repo, re.search(r"Ran experiment\(s\): (\S+)", output).group(1))


def _lock(repo: Path, rev: str) -> dict:
    from nnlab.compare import Revision

    return Revision(repo, rev).lock_stages


def model_hashes(repo: Path, rev: str) -> dict[str, str]:
    """Every model folder's hash as recorded in ``rev``'s dvc.lock."""
    return {out["path"]: out["md5"] for stage in _lock(repo, rev).values() for out in stage.get("outs", [])
            if out["path"].startswith("models/")}


def scoring_stages(repo: Path, rev: str) -> dict[str, set[str]]:
    """The stages that write a metrics file, with the model folders they read."""
    return {name: {dep["path"] for dep in stage.get("deps", []) if dep["path"].startswith("models/")}
            for name, stage in _lock(repo, rev).items()
            if any(out["path"].startswith("metrics/") for out in stage.get("outs", []))}


def check_experiment(text: str, result: subprocess.CompletedProcess, repo: Path) -> list[str]:
    """What the docs say of every ``dvc exp run`` they show: it records its own figures (no stage
    it depends on is stale in its commit, and every stage that scores a model it retrained ran and
    wrote new figures), it changes the params its ``-S`` name and no other (nothing carried over
    from an earlier run), and a run in the workspace leaves ``dvc status`` clean."""
    from nnlab.compare import Revision, producers, stale_stages

    name, rev = experiment_rev(repo, result.stdout)
    problems = []
    revision = Revision(repo, rev)
    stale = stale_stages(revision)
    if stale:
        problems.append(f"experiment {name} recorded stale stages: {stale}")
    asked = {word.split("=", 1)[0] for word in shlex.split(text)[shlex.split(text).index("-S") + 1::2]
             if "=" in word} if "-S" in text else set()
    base, ours = flat_params(repo, "HEAD"), flat_params(repo, rev)
    changed = {key for key in set(base) | set(ours) if base.get(key) != ours.get(key)}
    if changed != asked:
        problems.append(f"experiment {name} changed params {sorted(changed)}, its -S named {sorted(asked)}")
    files_changed = set(run(f"git diff --name-only HEAD {rev}", repo).stdout.split())
    made_by = producers(revision)
    models_before, models_now = model_hashes(repo, "HEAD"), model_hashes(repo, rev)
    retrained = {path for path in models_now if models_now[path] != models_before.get(path)}
    if not retrained:
        problems.append(f"experiment {name} retrained no model")
    for stage, deps in scoring_stages(repo, rev).items():   # where the model changed, its figures did
        if deps & retrained:
            written = {out for out, maker in made_by.items() if maker == stage}
            if not written & files_changed:
                problems.append(f"experiment {name}: {sorted(deps & retrained)} changed, {stage}'s "
                                f"{sorted(written)} did not")
    if "--temp" not in text:
        status = run("dvc status", repo).stdout
        if "up to date" not in status:
            problems.append(f"dvc status after {text}:\n{status}")
    return problems


def check_claims(text: str, line: str, result: subprocess.CompletedProcess, repo: Path) -> list[str]:
    """The effect the text around ``text`` claims, checked after it ran as ``line``."""
    out = result.stdout + result.stderr
    if text.startswith("dvc exp run"):
        return check_experiment(text, result, repo)
    if text.startswith("git restore"):
        dirty = run("git status --porcelain --untracked-files=no", repo).stdout
        return [f"{text} left tracked files changed:\n{dirty}"] if dirty.strip() else []
    if text == "python -m nnlab.restore":   # every model is in this clone's cache: what the two commands it replaces claim
        return check_claims("git restore", line, result, repo) + check_claims("dvc checkout", line, result, repo)
    if text == "dvc checkout":
        status = run("dvc status", repo).stdout
        return [] if "up to date" in status else [f"dvc checkout left the workspace unlike dvc.lock:\n{status}"]
    if text == "dvc metrics diff":   # the workspace against the last commit: a line per changed figure
        dirty = run("git status --porcelain metrics", repo).stdout.strip()
        return [] if bool(dirty) == ("test.accuracy" in out or "best.test_accuracy" in out) else \
            [f"dvc metrics diff printed {out!r} while metrics/ changed: {dirty!r}"]
    if text.startswith("python -m nnlab.compare"):
        lines = out.splitlines()
        wide = [len(line) for line in lines if len(line) > 200]
        return ([f"nnlab.compare printed lines wider than 200 columns: {wide}"] if wide else []) + \
            ([] if EXPERIMENT in out and "mlp_moons.lr=0.1" in out else [f"nnlab.compare lacks {EXPERIMENT}:\n{out}"])
    if text.startswith("dvc exp show --drop"):
        header = next((line for line in out.splitlines() if "Experiment" in line), "")
        wanted = ["Experiment", "train.lr", "metrics/mlp_moons.json:source", "metrics/mlp_moons.json:test.accuracy"]
        return [] if all(w in header for w in wanted) and EXPERIMENT in out else [f"{text} printed:\n{out}"]
    if text.startswith("dvc plots show") or text.startswith("dvc plots diff main"):
        return [] if (repo / "dvc_plots" / "index.html").is_file() else [f"{text}: no dvc_plots/index.html"]
    if text == "dvc dag":
        return [] if "report" in out and "mlp_moons" in out else [f"dvc dag printed:\n{out}"]
    if text == "dvc repro":
        return [] if re.search(r"up to date|didn't change", out) else [f"dvc repro ran stages:\n{out}"]
    if text.startswith("dvc exp apply"):
        from nnlab.compare import WORKSPACE

        _, rev = experiment_ref(repo, EXPERIMENT)
        return [] if flat_params(repo, WORKSPACE) == flat_params(repo, rev) else \
            [f"{text}: the workspace's params are not the experiment's"]
    if text.startswith("dvc exp branch"):
        return [] if run(f"git rev-parse --verify {BRANCH}", repo).returncode == 0 else [f"{text}: no branch"]
    if text.startswith("dvc exp remove"):
        return [f"{text}: still listed"] if EXPERIMENT in run("dvc exp list", repo).stdout else []
    if text.startswith("dvc remote add") or text.startswith("dvc config"):
        value = text.split()[-1]
        return [] if value in (repo / ".dvc" / "config").read_text() else [f"{text}: .dvc/config lacks {value}"]
    if text.startswith("dvc unprotect"):
        path = repo / text.split()[-1]
        return [] if os.access(path, os.W_OK) and not path.is_symlink() else [f"{text}: {path} is not writable"]
    if text == "python -m nnlab.plots_page":
        return [] if (repo / ".dvc" / "plots_template.html").is_file() else [f"{text}: no template"]
    if text.startswith("python -m nnlab.predict"):
        return [] if re.search(r"\d\.\d{4}", out) else [f"{text}: no answer with a probability or score:\n{out}"]
    if text.startswith("make -n") or line.startswith("make -n") or text.startswith("make "):
        return []   # checked where it runs (make -n …): below
    if text.startswith("python -m bench.run"):
        return [] if "usage" in out else [f"{text} --help printed:\n{out}"]
    if text.startswith("dvc queue remove") or text.startswith("dvc plots diff --out") or text.startswith("dvc metrics diff HEAD"):
        return []   # exit status only: what they print depends on what the queue and history hold
    return [f"{text}: no claim of its documentation is checked (add one to check_claims)"]


def experiment_ref(repo: Path, name: str) -> tuple[str, str]:
    refs = run("git for-each-ref refs/exps --format='%(refname) %(objectname)'", repo).stdout.split("\n")
    return name, next(line.split()[1] for line in refs if line.split() and line.split()[0].endswith("/" + name))


def substitute(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def real_slice(repo: Path, dest: Path) -> Path | None:
    """A Kaggle slice from ../shared/data at the size the clone's MRI models take, or None."""
    from PIL import Image

    from nnlab import images

    folder = SHARED_DATA / "alzheimer" / "Alzheimer_s Dataset" / "test" / "NonDemented"
    found = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if not found:
        return None
    _, scaling = images.load_pixel_scaler(repo / "models" / "mri_scaler")
    with Image.open(found[0]) as image:
        image.convert("L").resize((scaling["width"], scaling["height"])).save(dest)
    return dest


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines, at most {README_MAX_LINES}"


def test_commands_are_found_and_network_ones_are_marked():
    commands = documented_commands()
    texts = [command.text for command in commands]
    assert "make repro" in texts and "make test" in texts, "the README's two commands are gone"
    assert len(commands) >= 30, texts
    unmarked = [f"{c.source}: {c.text}" for c in commands if NETWORK.search(c.text) and c.needs != "network"]
    assert not unmarked, "mark these `# needs: network`:\n" + "\n".join(unmarked)


def test_linked_figures_are_pipeline_outputs(baseline):
    """Every image the docs show is a file the pipeline writes (present after the baseline's repro)."""
    missing = []
    for path in documents():
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", path.read_text()):
            resolved = (path.parent / target).resolve().relative_to(ROOT)
            if not (baseline.path / resolved).is_file():
                missing.append(f"{path.relative_to(ROOT)}: {target}")
    assert not missing, "\n".join(missing)


def test_documented_commands_run(baseline, tmp_path):
    repo = clone_workspace(baseline.path, tmp_path / "repo")
    from PIL import Image
    import numpy as np

    with np.load(repo / "data" / "mnist" / "raw.npz") as raw:
        Image.fromarray(raw["images_test"][0]).save(repo / "digit.png")
    slice_path = real_slice(repo, tmp_path / "slice.jpg")
    values = {"<exp>": EXPERIMENT, "<branch>": BRANCH, "/tmp/compare": str(tmp_path / "compare"),
              "digit.png": str(repo / "digit.png")}
    if slice_path:
        values["path/to/slice.jpg"] = str(slice_path)

    ordered, seen = [], set()
    for command in documented_commands():   # each command once, where the docs first give it
        if command.text.startswith(EVERY_TIME) or command.text not in seen:
            seen.add(command.text)
            ordered.append(command)
    # Removing the experiment comes last, after every command that names it.
    ordered.sort(key=lambda c: c.text.startswith("dvc exp remove "))

    state = {"repo": repo}
    failures, report, skipped = [], [], []
    for command in ordered:
        if "path/to/slice.jpg" in command.text and not slice_path:
            skipped.append(command.text)
            continue
        if "<name>" in command.text:
            values["<name>"] = "queued-run"   # only ever checked statically
        how, line = check_for(command, substitute(command.text, values), state)
        start = time.monotonic()
        if how == "static":
            argv = line
            problems = static_problems(argv, repo, stale_said="stale" in command.comment)
            line = "static check"
            if problems:
                failures.append(f"{command.source}: {command.text}\n  ({line})\n  " + "\n  ".join(problems))
        else:
            result = run(line, repo, timeout=900)
            if result.returncode:
                failures.append(f"{command.source}: {command.text}\n  ran: {line}\n  exit {result.returncode}\n"
                                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
            else:
                failures += [f"{command.source}: {problem}" for problem in check_claims(command.text, line, result, repo)]
            if line.startswith("make -n ") and "dvc exp run" in result.stdout:
                shown = result.stdout.replace("\\\n", " ")   # make -n prints a recipe's continued lines as written
                dvc_line = next(text for text in shown.splitlines() if "dvc exp run" in text)
                problems = static_problems(shlex.split(dvc_line[dvc_line.index("dvc exp run"):])[1:], repo)
                if problems:
                    failures.append(f"{command.source}: {command.text}\n  would run: {dvc_line}\n  "
                                    + "\n  ".join(problems))
            if line == "make -n repro" and "dvc repro" not in result.stdout:
                failures.append(f"{command.source}: make repro would not run `dvc repro`:\n{result.stdout}")
        report.append(f"{time.monotonic() - start:5.1f}s  {command.text}  ->  {line}")
    print("\n".join(report + [f"skipped (no ../shared/data): {s}" for s in skipped]))

    assert not failures, f"{len(failures)} documented command(s) failed:\n\n" + "\n\n".join(failures)
