"""Celery's own integration suite, with and without the maintenance hooks (``./dev celery-suite``).

Downloads the sdist of the *installed* Celery version from PyPI (cached),
extracts its ``t/integration`` tests and runs the canvas, tasks and inspect
modules against a private Redis broker three ways:

* ``off``   -- the suite as upstream runs it, no hooks;
* ``hooks`` -- ``signals.install`` on its apps (``celery_suite_plugin``), maintenance off;
* ``test``  -- hooks on, the control plane in TEST maintenance (publisher and worker).

The control plane shares the broker's Redis under its own key prefix, with a
SQLite file of its own per run. Prints per-run counts and every test whose
outcome differs from the ``off`` run; exits 1 when any differs, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
MODES = ("off", "hooks", "test")
MODULES = {
    "canvas": "t/integration/test_canvas.py",
    "tasks": "t/integration/test_tasks.py",
    "inspect": "t/integration/test_inspect.py",
}
OUTCOMES = ("passed", "failed", "error", "skipped")
#: What the upstream suite imports beyond Celery's own requirements.
EXTRA_DEPS = ("pydantic",)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    modes = _choose(args.modes, MODES, "--modes")
    modules = _choose(args.modules, tuple(MODULES), "--modules")
    if modes is None or modules is None:
        return 2
    version = metadata.version("celery")
    cache = Path(args.cache).resolve()
    source = fetch_suite(version, cache)
    deps = install_deps(source, cache)
    redis_url, stop_redis = start_private_redis(cache)
    results: dict[str, dict[str, str]] = {}
    try:
        for mode in modes:
            results[mode] = run_mode(mode, source, deps, redis_url, modules, cache, args.pytest)
    finally:
        stop_redis()
    return report(version, modes, results)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./dev celery-suite", description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: off,hooks,test")
    parser.add_argument(
        "--modules", default=",".join(MODULES), help="comma-separated: canvas,tasks,inspect"
    )
    parser.add_argument(
        "--cache", default=str(ROOT / ".cache" / "celery-suite"), help="download/run directory"
    )
    parser.add_argument("pytest", nargs="*", help="extra pytest arguments after --, e.g. -k chord")
    return parser


def _choose(raw: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...] | None:
    chosen = tuple(x.strip() for x in raw.split(",") if x.strip())
    unknown = [x for x in chosen if x not in allowed]
    if unknown or not chosen:
        print(f"celery-suite: {flag} takes {','.join(allowed)}; got {raw!r}", file=sys.stderr)
        return None
    return chosen


# -- the suite -----------------------------------------------------------------------
def fetch_suite(version: str, cache: Path) -> Path:
    """The extracted test tree of Celery ``version`` (downloaded once)."""
    source = cache / f"celery-{version}"
    if (source / "t" / "integration" / "conftest.py").exists():
        return source
    dist = cache / "dist"
    sdist = dist / f"celery-{version}.tar.gz"
    if not sdist.exists():
        print(f"== downloading the celery {version} sdist from PyPI")
        pip = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
        subprocess.run([*pip, f"celery=={version}", "-d", str(dist)], check=True)
    wanted = ("t/", "pyproject.toml", "requirements/")
    with tarfile.open(sdist) as tar:
        prefix = f"celery-{version}/"
        members = [
            m
            for m in tar.getmembers()
            if m.name.startswith(prefix) and m.name[len(prefix) :].startswith(wanted)
        ]
        tar.extractall(cache, members=members, filter="data")
    return source


def install_deps(source: Path, cache: Path) -> Path:
    """The suite's test plugins and imports, in a directory of their own (not the venv)."""
    deps = cache / "deps"
    stamp = deps / f".installed-{source.name}"
    if stamp.exists():
        return deps
    pins = _pins(source / "requirements" / "test.txt")
    rerun = "pytest-rerunfailures"
    if "pytest-rerunfailures" in pins:
        rerun += f"=={pins['pytest-rerunfailures']}"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--target", str(deps), "--upgrade"]
    print(f"== installing {rerun} and {', '.join(EXTRA_DEPS)} into {deps}")
    # pytest itself comes from the venv: the plugin is installed without its dependencies.
    subprocess.run([*pip, "--no-deps", rerun], check=True)
    subprocess.run([*pip, *EXTRA_DEPS], check=True)
    stamp.touch()
    return deps


def _pins(requirements: Path) -> dict[str, str]:
    pins = {}
    with contextlib.suppress(OSError):
        for line in requirements.read_text().splitlines():
            name, sep, version = line.strip().partition("==")
            if sep:
                pins[name.strip()] = version.strip()
    return pins


def start_private_redis(cache: Path) -> tuple[str, object]:
    """A redis-server of this run's own: the suite counts server-wide pub/sub channels
    and expects exactly one worker to answer a broadcast."""
    from maintenance.embedded import redis_server_binary, start_redis_server

    directory = Path(tempfile.mkdtemp(prefix="redis-", dir=_mkdir(cache / "run")))
    binary = shutil.which("redis-server") or redis_server_binary()
    url, pid = start_redis_server(directory, binary=binary)

    def stop() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(directory, ignore_errors=True)

    return url, stop


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- one run -------------------------------------------------------------------------
def run_mode(
    mode: str,
    source: Path,
    deps: Path,
    redis_url: str,
    modules: tuple[str, ...],
    cache: Path,
    extra: list[str],
) -> dict[str, str]:
    """Run the suite once in ``mode``; the outcome of each test by id."""
    run_dir = _mkdir(cache / "run")
    junit = run_dir / f"{mode}.xml"
    log = run_dir / f"{mode}.log"
    database = run_dir / f"{mode}.db"
    for path in (junit, database):
        path.unlink(missing_ok=True)
    host_port = redis_url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "MAINTENANCE_"))}
    env.update(
        TEST_BROKER=redis_url,
        TEST_BACKEND=redis_url,
        REDIS_HOST=host,
        REDIS_PORT=port,
        REDIS_URL=redis_url,
        MAINTENANCE_REDIS_PREFIX=f"celery-suite-{mode}",
        MAINTENANCE_DATABASE_URL=f"sqlite:///{database}",
        MAINTENANCE_DATA_DIR=str(run_dir / "state"),
        PYTHONPATH=os.pathsep.join([str(source), str(deps), str(HERE)]),
    )
    # Upstream CI gets Celery's fixtures from the pytest-celery package's entry point;
    # loading the module it points at does the same without that package.
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "celery.contrib.pytest"]
    cmd.append(f"--junitxml={junit}")
    if mode != "off":
        cmd += ["-p", "celery_suite_plugin"]
    cmd += ["--timeout=600", "-q", *(MODULES[m] for m in modules), *extra]
    admin = _control_plane(env) if mode == "test" else None
    if admin is not None:
        admin.enable_maintenance(
            "Celery's integration suite in TEST mode",
            duration="6h",
            mode="test",
            enabled_by="celery-suite",
            wait=0,
        )
    print(f"== {mode}: {' '.join(cmd[3:])}  (log: {log})", flush=True)
    try:
        with log.open("w") as out:
            subprocess.run(cmd, cwd=source, env=env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if admin is not None:
            _say_what_the_hooks_saw(admin)
            admin.disable_maintenance("celery-suite", requeue=False, wait=0)
            admin.close()
    tail = log.read_text(errors="replace").strip().splitlines()
    print(f"   {tail[-1] if tail else '(no output)'}")
    return outcomes(junit)


def _control_plane(env: dict[str, str]):  # type: ignore[no-untyped-def]
    from maintenance import Settings, build_service

    return build_service(Settings.from_env(env), kind="cli", register=False)


def _say_what_the_hooks_saw(admin) -> None:  # type: ignore[no-untyped-def]
    # Proof the hooks were live: publishes they would have refused were counted.
    extra = admin.get_maintenance_status().extra
    would = extra.get("would_block_attempts") or {}
    total = sum(int(n) for n in would.values())
    print(f"   hooks live: {total} publish(es) that NORMAL maintenance would refuse: {would}")


def outcomes(junit: Path) -> dict[str, str]:
    """``classname::name`` -> passed / failed / error / skipped, from a JUnit XML report."""
    if not junit.exists():
        return {}
    found: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        if "error" in tags:
            found[test_id] = "error"
        elif "failure" in tags:
            found[test_id] = "failed"
        elif "skipped" in tags:
            found[test_id] = "skipped"
        else:
            found[test_id] = "passed"
    return found


# -- the comparison ------------------------------------------------------------------
def report(version: str, modes: tuple[str, ...], results: dict[str, dict[str, str]]) -> int:
    today = dt.date.today().isoformat()
    print(f"\nCelery {version}, {today}, Redis broker and backend")
    print(f"{'run':<7}" + "".join(f"{o:>9}" for o in OUTCOMES))
    for mode in modes:
        counts = Counter(results[mode].values())
        print(f"{mode:<7}" + "".join(f"{counts[o]:>9}" for o in OUTCOMES))
    baseline = results.get("off")
    if baseline is None:
        print("\n(no 'off' run to compare with)")
        return 0
    differing = 0
    for mode in modes:
        if mode == "off":
            continue
        current = results[mode]
        changed = sorted(
            t
            for t in set(baseline) | set(current)
            if baseline.get(t, "absent") != current.get(t, "absent")
        )
        differing += len(changed)
        print(f"\n{mode}: {len(changed)} test(s) whose outcome differs from 'off'")
        for test_id in changed:
            before, after = baseline.get(test_id, "absent"), current.get(test_id, "absent")
            print(f"  {test_id}: {before} -> {after}")
    failing = sorted(t for t, o in baseline.items() if o in ("failed", "error"))
    if failing:
        print(f"\noff: the suite's own failures and errors ({len(failing)})")
        for test_id in failing:
            print(f"  {test_id}: {baseline[test_id]}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
