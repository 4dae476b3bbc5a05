"""Shared test helpers: repository paths, the real-data samples, and running a stage."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

# Before any test module imports numpy or torch: the session, its workers and its stage server
# compute with the kernels every stage process pins (nnlab/kernels.py; NNLAB_NATIVE_KERNELS=1 opts out).
import nnlab  # noqa: F401, E402  (pytest.ini puts the repository on sys.path)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real-format samples beside the repository; tests skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


def deep_merge(base: dict, overrides: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def default_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def tiny_overrides() -> dict:
    """tests/tiny_params.yaml: the overrides that shrink every stage to seconds."""
    return yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())


def tiny_params() -> dict:
    return deep_merge(default_params(), tiny_overrides())


def venv_env(*, stage_server: bool = True) -> dict:
    """The environment with this interpreter's bin first, so `python` and `dvc` are the venv's;
    with ``stage_server``, `python -m stages.…` runs in the session's stage server
    (tests/stage_server.py) where there is one."""
    env = dict(os.environ)
    shims = os.environ.get("NNLAB_STAGE_SHIM") if stage_server else None
    env["PATH"] = os.pathsep.join([*filter(None, [shims]), str(Path(sys.executable).parent), env.get("PATH", "")])
    if not stage_server:
        env.pop("NNLAB_STAGE_SERVER", None)
    env["PYTHONPATH"] = ""
    return env


def pytest_configure(config):
    """The session's stage server, started once by the process that starts the others (pytest-xdist's
    controller, or pytest alone): its workers inherit the variables that lead to it."""
    if os.environ.get("PYTEST_XDIST_WORKER") or config.getoption("collectonly"):
        return
    from stage_server import write_shim

    folder = Path(tempfile.mkdtemp(prefix="nnlab-stages-"))
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "stage_server.py"), str(folder / "socket")],
                              cwd=folder, env=venv_env(stage_server=False), stdin=subprocess.DEVNULL,
                              start_new_session=True)
    os.environ["NNLAB_STAGE_SERVER"] = str(folder / "socket")
    os.environ["NNLAB_STAGE_SHIM"] = str(write_shim(folder / "bin", sys.executable))

    def stop() -> None:
        server.kill()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)

    config.add_cleanup(stop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (``CI`` set, as .ci/run's runners set it) a skip fails the test, unless the test is marked
    ``skips_in_ci``: CI has ../shared/data, the browser and root, so any other skip hides a test
    that CI is meant to run. `make test` lists every skip (``-rs``)."""
    report = (yield).get_result()
    if report.skipped and os.environ.get("CI") and not item.get_closest_marker("skips_in_ci"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which is meant to run it: {reason}"


def stage_python() -> str:
    """The `python` that runs the repository's modules (``-m stages.…``, ``-m nnlab.predict``): the
    stage server's shim, or this interpreter."""
    shims = os.environ.get("NNLAB_STAGE_SHIM")
    return str(Path(shims) / "python") if shims else sys.executable


def run_stage(stage: str, params: dict, cwd: Path, *, args: list[str] = (), **options) -> subprocess.CompletedProcess:
    """Run ``python -m stages.<stage> [args] --params <tmp>`` in ``cwd`` with ``params`` written out;
    ``options`` go to subprocess.run. With a ``preexec_fn`` (a resource limit, say) the stage runs in
    a process of its own, which the limit reaches, not in a fork of the stage server."""
    params_file = cwd / "params.test.yaml"
    params_file.write_text(yaml.safe_dump(params))
    python = sys.executable if "preexec_fn" in options else stage_python()
    return subprocess.run(
        [python, "-m", f"stages.{stage}", *args, "--params", str(params_file)],
        cwd=cwd, env={**venv_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
        **options,
    )


def peak_memory_mib(call: str) -> tuple[str, float]:
    """Evaluate ``call`` (Python, with ``nnlab`` importable) in a fresh interpreter, so that its peak
    memory is that call's alone (nnlab.cli.peak_memory_mib: not ru_maxrss, which Linux carries across
    exec from the pytest worker): the one-line NnlabError it raised ("" if none) and the peak in MiB."""
    code = ("import sys\nfrom nnlab.cli import peak_memory_mib\nfrom nnlab.errors import NnlabError\ntry:\n"
            f"    {call}\nexcept NnlabError as exc:\n    print(exc)\n"
            "print(peak_memory_mib(), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], env={**venv_env(), "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), float(result.stderr.strip().splitlines()[-1])


#: The pipeline test files that take longest (about a minute each on 2 cores), handed out first
#: so that the two workers finish together; the others follow in name order.
LONGEST_FIRST = ("test_experiments.py", "test_faults.py", "test_documented_commands.py")


def uses_baseline(item) -> bool:
    return "baseline" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)   # after `-m` and `-k` have deselected: only the tests that will run count
def pytest_collection_modifyitems(session, config, items):
    """Tests on the shared tiny-params pipeline (tests/pipeline_repo.py) run last.

    `make test` hands out whole files (`--dist loadfile`) in this order (`--no-loadscope-reorder`),
    so the files with such a test come after every file without. The first of them builds the
    pipeline (two DVC processes, side by side) while the other worker waits for it: built in the
    background beside the unit tests instead, it used the same CPU, contended for, and made
    `make test` no faster on 2 cores.
    """
    waiting_files = {item.path for item in items if uses_baseline(item)}

    def order(item) -> tuple:
        longest = LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST else len(LONGEST_FIRST)
        return item.path in waiting_files, longest, uses_baseline(item)

    items.sort(key=order)
