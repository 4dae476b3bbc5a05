"""Every stage's `deps` in dvc.yaml cover the code its script runs.

A stage whose script imports an `nnlab/` module that dvc.yaml does not list
would stay "up to date" in `dvc status` after an edit to that module, with
its committed metrics stale. The import closure is computed with `ast` from
the stage's `python -m <module>` command, transitively, so a new import
anywhere in the chain is caught here, not in review.
"""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import yaml

from conftest import ROOT

PACKAGES = ("nnlab", "stages")


def module_file(module: str, root: Path = ROOT) -> str | None:
    """The repository-relative file of an `nnlab`/`stages` module, or None for anything else."""
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def runs_code(tree: ast.Module) -> bool:
    """False for a file of nothing but a docstring (a package's bare `__init__.py`)."""
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in tree.body)


@functools.cache
def direct_imports(path: str, root: Path = ROOT) -> frozenset[str]:
    """The project files one file imports, at any depth of the file (function-level imports too).

    Files of nothing but a docstring are left out: editing them changes no result.
    """
    found = set()
    for node in ast.walk(ast.parse((root / path).read_text(), filename=path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                # `import nnlab.nn.layers` also runs nnlab/__init__.py and nnlab/nn/__init__.py.
                parts = name.split(".")
                found |= {f for f in (module_file(".".join(parts[:i]), root)
                                      for i in range(1, len(parts) + 1)) if f}
    return frozenset(f for f in found if runs_code(ast.parse((root / f).read_text())))


@functools.cache
def import_closure(script: str, root: Path = ROOT) -> frozenset[str]:
    seen, todo = set(), [script]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(direct_imports(path, root))
    return frozenset(seen)


def expanded_stages(dvc_yaml: dict) -> dict[str, dict]:
    """Stages by name, `foreach` stages expanded to `name@item` with `${item}` substituted."""
    stages = {}
    for name, spec in (dvc_yaml.get("stages") or {}).items():
        if "foreach" in spec:
            for item in spec["foreach"]:
                stages[f"{name}@{item}"] = yaml.safe_load(yaml.safe_dump(spec["do"]).replace("${item}", str(item)))
        else:
            stages[name] = spec
    return stages


def entry_path(entry) -> str:
    return next(iter(entry)) if isinstance(entry, dict) else entry


def stage_script(spec: dict) -> str | None:
    match = re.search(r"python3?\s+-m\s+([\w.]+)", spec["cmd"])
    return module_file(match.group(1)) if match else None


def run_by_python_m(script: str) -> frozenset[str]:
    """What `python -m` runs for a script: its packages' `__init__.py` files (stages/__init__.py pins
    the float kernels), then the script, with everything they import."""
    packages = Path(script).parent.parts
    inits = [init for init in (f"{'/'.join(packages[:i])}/__init__.py" for i in range(1, len(packages) + 1))
             if (ROOT / init).is_file() and runs_code(ast.parse((ROOT / init).read_text()))]
    return frozenset().union(*map(import_closure, [*inits, script]))


def uncovered(files: set[str], deps: list) -> list[str]:
    paths = [entry_path(d).rstrip("/") for d in deps]
    return sorted(f for f in files if not any(f == d or f.startswith(d + "/") for d in paths))


def undeclared_imports(dvc_yaml: dict) -> dict[str, list[str]]:
    """{stage: [imported project files that no dep covers]} for every python stage."""
    missing = {}
    for name, spec in expanded_stages(dvc_yaml).items():
        script = stage_script(spec)
        if script and (files := uncovered(run_by_python_m(script), spec.get("deps", []))):
            missing[name] = files
    return missing


def load_dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_every_python_stage_runs_a_module_of_the_repository():
    for name, spec in expanded_stages(load_dvc_yaml()).items():
        if "python" in spec["cmd"]:
            assert stage_script(spec), f"{name}: `{spec['cmd']}` names no module of the repository"


def test_every_imported_module_is_a_dependency():
    missing = undeclared_imports(load_dvc_yaml())
    assert not missing, "modules imported by a stage but missing from its deps in dvc.yaml:\n" + "\n".join(
        f"  {stage}: {', '.join(files)}" for stage, files in missing.items())


def test_every_code_dependency_is_imported():
    """The other way round: a listed module the stage never imports would rerun it (retrain a
    model, say) for an edit that cannot change its outputs."""
    for name, spec in expanded_stages(load_dvc_yaml()).items():
        if script := stage_script(spec):
            imported = run_by_python_m(script)
            unused = [dep for dep in map(entry_path, spec.get("deps", []))
                      if dep.endswith(".py") and dep not in imported]
            assert not unused, f"{name} lists modules it does not import: {unused}"


def test_no_stage_imports_another_stage():
    for name, spec in expanded_stages(load_dvc_yaml()).items():
        if script := stage_script(spec):
            others = sorted(f for f in run_by_python_m(script)
                            if f.startswith("stages/") and f not in (script, "stages/__init__.py"))
            assert not others, f"{name} imports other stages: {others} (move shared code into nnlab/)"


def test_the_check_fails_when_any_covering_dependency_is_removed():
    """Each dep line that alone covers an imported module, removed in turn, is reported."""
    dvc_yaml = load_dvc_yaml()
    checked = 0
    for name, spec in expanded_stages(dvc_yaml).items():
        script = stage_script(spec)
        if not script:
            continue
        imported = run_by_python_m(script)
        deps = spec.get("deps", [])
        for index in range(len(deps)):
            rest = deps[:index] + deps[index + 1:]
            if uncovered(imported, rest):
                checked += 1
                assert undeclared_imports({"stages": {name: {**spec, "deps": rest}}}), (name, deps[index])
    assert checked, "no dep line covers an imported module"
