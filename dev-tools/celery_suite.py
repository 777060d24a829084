"""Celery's own integration suite, with and without the maintenance hooks (``./dev celery-suite``).

Downloads the sdist of the *installed* Celery version from PyPI (cached),
extracts its ``t/integration`` tests and runs the canvas, tasks and inspect
modules against a private Redis broker three ways:

* ``off``   -- the suite as upstream runs it, no hooks;
* ``hooks`` -- ``signals.install`` on its apps (``celery_suite_plugin``), maintenance off;
* ``test``  -- hooks on, the control plane in TEST maintenance (publisher and worker).

The control plane shares the broker's Redis under its own key prefix, with a
SQLite file of its own per run. Prints per-run counts and every test whose
outcome differs from the ``off`` run. Each difference is re-run (``--confirm``
times, in ``off`` and in the differing run): it *holds* when every re-run
differs too; one agreeing re-run marks it as the timing of a busy machine.
Exits 1 when any difference holds, 2 on bad usage.
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
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maintenance import EnhancedMaintenanceModeService

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
    suite = Suite(source, deps, redis_url, cache, args.pytest)
    results: dict[str, dict[str, str]] = {}
    confirmed: dict[str, dict[str, list[tuple[str, str]]]] = {}
    try:
        targets = [MODULES[m] for m in modules]
        for mode in modes:
            kept = cache / "run" / f"{mode}.xml"
            results[mode] = outcomes(kept) if args.reuse else suite.run(mode, mode, targets)
        if "off" in results:
            for mode in modes:
                if mode != "off":
                    confirmed[mode] = suite.confirm(mode, differences(results, mode), args.confirm)
    finally:
        stop_redis()
    return report(version, modes, results, confirmed)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./dev celery-suite", description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: off,hooks,test")
    parser.add_argument(
        "--modules", default=",".join(MODULES), help="comma-separated: canvas,tasks,inspect"
    )
    parser.add_argument(
        "--cache", default=str(ROOT / ".cache" / "celery-suite"), help="download/run directory"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="compare the last full runs kept in the cache instead of running them again",
    )
    parser.add_argument(
        "--confirm",
        type=int,
        default=2,
        help="re-run each differing test this many times in both runs (default 2)",
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


def start_private_redis(cache: Path) -> tuple[str, Callable[[], None]]:
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
class Suite:
    """Runs (parts of) the extracted suite against the private Redis."""

    def __init__(
        self, source: Path, deps: Path, redis_url: str, cache: Path, extra: list[str]
    ) -> None:
        self.source = source
        self.deps = deps
        self.redis_url = redis_url
        self.run_dir = _mkdir(cache / "run")
        self.extra = extra

    def run(self, mode: str, tag: str, targets: list[str]) -> dict[str, str]:
        """Run ``targets`` once in ``mode`` (files named ``tag``); each test's outcome."""
        junit = self.run_dir / f"{tag}.xml"
        log = self.run_dir / f"{tag}.log"
        database = self.run_dir / f"{tag}.db"
        for path in (junit, database):
            path.unlink(missing_ok=True)
        env = self._environment(tag, database)
        # Upstream CI gets Celery's fixtures from the pytest-celery package's entry
        # point; loading the module it points at does the same without that package.
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        cmd += ["-p", "celery.contrib.pytest", f"--junitxml={junit}"]
        if mode != "off":
            cmd += ["-p", "celery_suite_plugin"]
        cmd += ["--timeout=600", "-q", *targets, *self.extra]
        admin = _control_plane(env) if mode == "test" else None
        if admin is not None:
            admin.enable_maintenance(
                "Celery's integration suite in TEST mode",
                duration="6h",
                mode="test",
                enabled_by="celery-suite",
                wait=0,
            )
        shown = " ".join(cmd[3:]) if len(targets) <= len(MODULES) else f"{len(targets)} tests"
        print(f"== {tag}: {shown}  (log: {log})", flush=True)
        try:
            with log.open("w") as out:
                subprocess.run(cmd, cwd=self.source, env=env, stdout=out, stderr=subprocess.STDOUT)
        finally:
            if admin is not None:
                _say_what_the_hooks_saw(admin)
                admin.disable_maintenance("celery-suite", requeue=False, wait=0)
                admin.close()
        tail = log.read_text(errors="replace").strip().splitlines()
        print(f"   {tail[-1] if tail else '(no output)'}")
        return outcomes(junit)

    def confirm(
        self, mode: str, changed: list[str], rounds: int
    ) -> dict[str, list[tuple[str, str]]]:
        """Re-run the tests whose outcome differed, in ``off`` and in ``mode``, ``rounds``
        times: ``{test: [(off outcome, mode outcome), ...]}``. On a busy machine a
        single run of a timing-sensitive test can fail either way."""
        seen: dict[str, list[tuple[str, str]]] = {t: [] for t in changed}
        if not changed or rounds <= 0:
            return seen
        targets = [node_id(t) for t in changed]
        for round_ in range(1, rounds + 1):
            baseline = self.run("off", f"off-confirm-{mode}-{round_}", targets)
            current = self.run(mode, f"{mode}-confirm-{round_}", targets)
            for test_id in changed:
                seen[test_id].append(
                    (baseline.get(test_id, "absent"), current.get(test_id, "absent"))
                )
        return seen

    def _environment(self, tag: str, database: Path) -> dict[str, str]:
        # A fresh SQLite file starts at version 0: a key prefix of its own too, or the
        # status a previous run left in Redis (a higher version) would shadow it.
        host_port = self.redis_url.split("//", 1)[1].split("/", 1)[0]
        host, _, port = host_port.partition(":")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "MAINTENANCE_"))}
        env.update(
            TEST_BROKER=self.redis_url,
            TEST_BACKEND=self.redis_url,
            REDIS_HOST=host,
            REDIS_PORT=port,
            REDIS_URL=self.redis_url,
            MAINTENANCE_REDIS_PREFIX=f"celery-suite-{tag}-{uuid.uuid4().hex[:6]}",
            MAINTENANCE_DATABASE_URL=f"sqlite:///{database}",
            MAINTENANCE_DATA_DIR=str(self.run_dir / "state"),
            PYTHONPATH=os.pathsep.join([str(self.source), str(self.deps), str(HERE)]),
        )
        return env


def node_id(test_id: str) -> str:
    """``t.integration.test_canvas.test_chord::test_x[3]`` -> pytest's node id."""
    classname, _, name = test_id.partition("::")
    parts = classname.split(".")
    return "::".join(["/".join(parts[:3]) + ".py", *parts[3:], name])


def _control_plane(env: dict[str, str]) -> EnhancedMaintenanceModeService:
    from maintenance import Settings, build_service

    return build_service(Settings.from_env(env), kind="cli", register=False)


def _say_what_the_hooks_saw(admin: EnhancedMaintenanceModeService) -> None:
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
def differences(results: dict[str, dict[str, str]], mode: str) -> list[str]:
    """Tests whose outcome in ``mode`` is not their outcome in the ``off`` run."""
    baseline, current = results["off"], results[mode]
    return sorted(
        t
        for t in set(baseline) | set(current)
        if baseline.get(t, "absent") != current.get(t, "absent")
    )


def report(
    version: str,
    modes: tuple[str, ...],
    results: dict[str, dict[str, str]],
    confirmed: dict[str, dict[str, list[tuple[str, str]]]],
) -> int:
    """Print counts and differences; 1 when a difference held in every re-run."""
    today = dt.date.today().isoformat()
    print(f"\nCelery {version}, {today}, Redis broker and backend")
    print(f"{'run':<7}" + "".join(f"{o:>9}" for o in OUTCOMES))
    for mode in modes:
        counts = Counter(results[mode].values())
        print(f"{mode:<7}" + "".join(f"{counts[o]:>9}" for o in OUTCOMES))
    if "off" not in results:
        print("\n(no 'off' run to compare with)")
        return 0
    held = 0
    for mode in modes:
        if mode == "off":
            continue
        changed = differences(results, mode)
        print(f"\n{mode}: {len(changed)} test(s) whose outcome differs from 'off'")
        for test_id in changed:
            before, after = (
                results["off"].get(test_id, "absent"),
                results[mode].get(test_id, "absent"),
            )
            reruns = confirmed.get(mode, {}).get(test_id, [])
            verdict = ""
            # A difference holds when every re-run shows one too; one agreeing re-run
            # makes it the timing of a busy machine, not the hooks.
            holds = all(b != a for b, a in reruns)
            if reruns:
                verdict = (
                    "  re-runs (off/" + mode + "): " + ", ".join(f"{b}/{a}" for b, a in reruns)
                )
                verdict += " -> HOLDS" if holds else " -> not reproduced (flaky)"
            held += holds
            print(f"  {test_id}: {before} -> {after}{verdict}")
    failing = sorted(t for t, o in results["off"].items() if o in ("failed", "error"))
    if failing:
        print(f"\noff: the suite's own failures and errors ({len(failing)})")
        for test_id in failing:
            print(f"  {test_id}: {results['off'][test_id]}")
    return 1 if held else 0


if __name__ == "__main__":
    sys.exit(main())
