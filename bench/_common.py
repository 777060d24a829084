"""Shared helpers for the benchmarks: command-line options, judging goals (bench/goals.py)
against the noise measured in the same run, settings on the embedded default, percentiles,
key clean-up."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from bench.goals import BY_KEY, Goal, goals_of
from maintenance import Settings

MET, WITHIN_NOISE, MISSED, NOT_JUDGED = "MET", "NOT MET, within noise", "MISSED", "not judged"


def bench_settings(**overrides: object) -> Settings:
    """Settings from the environment; without REDIS_URL / a database URL, the embedded
    default in a temporary directory. Keys live under a fresh prefix."""
    tmp = Path(tempfile.mkdtemp(prefix="maintenance-bench-"))
    settings = Settings.from_env()
    changes: dict[str, object] = {"redis_prefix": f"bench{uuid.uuid4().hex[:8]}"}
    if not os.environ.get("MAINTENANCE_DATABASE_URL"):
        changes["database_url"] = f"sqlite:///{tmp / 'bench.db'}"
    if not os.environ.get("REDIS_URL"):
        changes["data_dir"] = str(tmp / "state")
        _stop_at_exit(tmp / "state")
    changes.update(overrides)
    return settings.replace(**changes)


def bench_redis_url() -> str:
    """``REDIS_URL``, else an embedded Redis in a temporary directory (stopped at exit)."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    from maintenance.embedded import ensure_embedded_redis

    state = Path(tempfile.mkdtemp(prefix="maintenance-bench-")) / "state"
    _stop_at_exit(state)
    return ensure_embedded_redis(state)


def _stop_at_exit(data_dir: Path) -> None:
    from maintenance.embedded import stop_embedded_redis

    atexit.register(stop_embedded_redis, data_dir)


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) of ``samples``."""
    ordered = sorted(samples)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def delete_keys(client: redis.Redis, pattern: str) -> int:
    """Delete every key matching ``pattern`` (SCAN, then UNLINK in batches); how many."""
    names = list(client.scan_iter(pattern, count=10_000))
    for start in range(0, len(names), 1000):
        client.unlink(*names[start : start + 1000])
    return len(names)


def summary(samples: list[float], unit: float = 1000.0) -> str:
    """p50 / p99 / max in milliseconds (``unit`` scales seconds)."""
    return (
        f"p50 {statistics.median(samples) * unit:7.3f} ms   "
        f"p99 {pct(samples, 99) * unit:7.3f} ms   max {max(samples) * unit:7.3f} ms"
    )


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every bench has: ``--short`` (small sizes, a few
    seconds, no timing judged -- counts that must be 0 are: CI runs each bench so) and
    ``--check`` (exit 1 on a missed goal)."""
    out = argparse.ArgumentParser(
        description=(doc or "").strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    out.add_argument(
        "--short", action="store_true", help="small sizes; judge only counts that must be 0"
    )
    out.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    return out


def judge(goal: Goal, value: float, noise: float | None) -> tuple[str, float]:
    """How ``value`` fares against ``goal``: the verdict and by how much it is past the limit.

    Past the limit by no more than ``noise`` (same unit, measured in the same run) is
    within noise; a count goal (no noise) is missed by one event."""
    if not math.isfinite(value):  # not measured at all (e.g. an event never arrived)
        return MISSED, math.inf
    over = value - goal.limit if goal.at_most else goal.limit - value
    if over <= 0:
        return MET, over
    if goal.exact or noise is None or not math.isfinite(noise) or over > noise:
        return MISSED, over
    return WITHIN_NOISE, over


def _fmt(value: float, unit: str) -> str:
    if unit == "":
        return f"{value:g}"
    digits = {"x": 3, "ms": 2, "s": 3}.get(unit, 3)
    return f"{value:.{digits}f} {unit}"


class Report:
    """Prints one ``goal <key>:`` line per goal of a bench and, under ``--check``, exits 1
    when one is missed beyond the noise. Every goal of the bench must be reported."""

    def __init__(self, bench: str, args: argparse.Namespace) -> None:
        self.bench = bench
        self.short = bool(args.short)
        self.check = bool(args.check) and not self.short
        self.results: dict[str, str] = {}

    def goal(self, key: str, value: float, noise: float | None, note: str = "") -> str:
        """Print and record how goal ``key`` fared; ``noise`` None: one measurement only."""
        goal = BY_KEY[key]
        if goal.exact:
            noise_text = "exact"
        elif noise is None or math.isnan(noise):
            noise, noise_text = None, "noise n/a: one measurement"
        else:
            noise_text = f"noise +/-{_fmt(noise, goal.unit)}"
        verdict, over = judge(goal, value, noise)
        if self.short and not goal.exact:  # counts of what must not happen: judged always
            verdict = NOT_JUDGED
            said = "not judged (short run)"
        elif verdict == MET:
            said = MET
        else:
            past = f"{_fmt(over, goal.unit)}"
            if goal.unit and goal.limit:
                past += f" ({over / goal.limit:.1%})"
            said = f"{verdict} by {past}" + (" (beyond noise)" if verdict == MISSED else "")
        self.results[key] = verdict
        extra = f"  [{note}]" if note else ""
        print(
            f"  goal {key}: {_fmt(value, goal.unit)}   limit {goal.limit_text()}   "
            f"{noise_text}   {said}{extra}",
            flush=True,
        )
        return verdict

    def finish(self) -> None:
        """Print the bench's tally; exit 1 under ``--check`` if a goal was missed."""
        missing = [g.key for g in goals_of(self.bench) if g.key not in self.results]
        if missing:
            raise SystemExit(f"{self.bench}: goals not reported: {', '.join(missing)}")
        counts = {
            v: sum(1 for r in self.results.values() if r == v)
            for v in (MET, WITHIN_NOISE, MISSED, NOT_JUDGED)
        }
        tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        print(f"result {self.bench}: {len(self.results)} goals: {tally}", flush=True)
        if self.check and counts[MISSED]:
            sys.exit(1)
        if self.short and any(BY_KEY[k].exact and v == MISSED for k, v in self.results.items()):
            sys.exit(1)  # a correctness goal (a count that must be 0) failed


def aa_noise(control_ratio: float, limit: float) -> float:
    """The A/A noise of a ratio goal, in the goal's unit: how far the baseline timed
    against itself landed from 1, scaled to the limit."""
    return abs(control_ratio - 1.0) * limit


def split_noise(
    samples: Sequence[float], stat: Callable[[list[float]], float], blocks: int = 10
) -> float:
    """The noise of ``stat`` over time-ordered ``samples``: the difference between the
    statistic of two halves made of alternating blocks (the run against itself)."""
    if len(samples) < 4:
        return math.nan
    size = max(1, len(samples) // (2 * blocks))
    halves: tuple[list[float], list[float]] = ([], [])
    for i, value in enumerate(samples):
        halves[(i // size) % 2].append(value)
    return abs(stat(halves[0]) - stat(halves[1]))


def cpu_seconds(procs: Sequence[subprocess.Popen[Any]]) -> list[float]:
    """CPU seconds each process has run, all its threads (Linux schedstat; empty elsewhere)."""
    if not Path("/proc/self/task").is_dir():
        return []
    return [_cpu_of(proc.pid) for proc in procs]


def _cpu_of(pid: int) -> float:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


# -- instruction counts (deterministic, whatever else the machine runs) -----------------

#: The C function a phase boundary calls (``os.getppid``): callgrind dumps its counters
#: on entering it, so each phase's instructions land in a file of their own.
_MARK_SYMBOL = "os_getppid"
INSTRUCTIONS_CHILD = "--instructions-child"


def valgrind() -> str | None:
    """The ``valgrind`` executable, unless absent or ``BENCH_INSTRUCTIONS=0``."""
    if os.environ.get("BENCH_INSTRUCTIONS", "1") == "0":
        return None
    return shutil.which("valgrind")


def freeze_heap() -> None:
    """In a child run by ``count_instructions``, once warmed up: collect, then move every
    object alive now out of the collector's view (``gc.freeze``). A full collection walks
    the whole heap -- imports, the app, the service -- and when one falls in a phase its
    cost says how big the heap is, not what the phase ran; young collections (what the
    measured code's own allocations cause) still run and are counted."""
    gc.collect()
    gc.freeze()


def phase(label: str) -> None:
    """In a child run by ``count_instructions``: end the phase before, start ``label``.
    Call ``phase("end")`` after the last one."""
    print(f"phase {label}", flush=True)
    os.getppid()  # callgrind dumps (and zeroes) its counters here


def count_instructions(script: str, argv: Sequence[str], timeout: float = 1200) -> dict[str, int]:
    """Run ``script --instructions-child argv`` under callgrind; instructions its main
    thread executed in each phase (summed over phases of the same label).

    Instruction counts do not depend on what else the machine runs (no other process's
    work, no frequency scaling, no cache contention is counted), so two code paths
    measured in one such run differ by what they execute. Background threads (the status
    cache's) are counted apart and left out."""
    tool = valgrind()
    if tool is None:
        raise RuntimeError("valgrind is not installed")
    out = Path(tempfile.mkdtemp(prefix="bench-callgrind-")) / "cg"
    done = subprocess.run(
        [
            tool,
            "--tool=callgrind",
            f"--dump-before={_MARK_SYMBOL}",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            script,
            INSTRUCTIONS_CHILD,
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{script} under callgrind exited {done.returncode}: {done.stderr[-2000:]}"
        )
    labels = [line[6:] for line in done.stdout.splitlines() if line.startswith("phase ")]
    totals: dict[str, int] = {}
    # Dump 1 is everything before the first mark; dump i + 2 is the phase labelled i.
    for i, label in enumerate(labels[:-1]):
        text = Path(f"{out}.{i + 2}-01").read_text()
        found = re.search(r"^totals: (\d+)", text, re.M)
        if found is None:
            raise RuntimeError(f"no totals in callgrind dump {out}.{i + 2}-01")
        totals[label] = totals.get(label, 0) + int(found.group(1))
    shutil.rmtree(out.parent, ignore_errors=True)
    return totals


def instruction_ratios(
    script: str,
    argv: Sequence[str],
    units: int,
    *,
    unit: str,
    subject: str,
    baseline: str,
    control: str,
    shape: str,
) -> tuple[float, float] | None:
    """``subject / baseline`` and the A/A ``control / baseline`` in instructions per
    ``unit``, counted by ``count_instructions(script, argv)`` over ``units`` units per
    phase label, printed as they are (None: valgrind not installed or switched off)."""
    if valgrind() is None:
        print("  instructions: not counted (valgrind not installed, or BENCH_INSTRUCTIONS=0)")
        return None
    counts = count_instructions(script, argv)
    per = {name: count / units for name, count in counts.items()}
    ratio, aa = per[subject] / per[baseline], per[control] / per[baseline]
    print(
        f"  instructions per {unit} (callgrind, {shape}): "
        + "   ".join(f"{name} {value:,.0f}" for name, value in per.items())
    )
    print(f"  A/A control: {control} / {baseline} (instructions) = {aa:.4f}")
    print(
        f"  {subject} / {baseline} (instructions)   = {ratio:.4f}"
        f"   (+{per[subject] - per[baseline]:,.0f} per {unit})"
    )
    return ratio, aa


def wait_count(
    count: Callable[[], int],
    target: int,
    timeout: float,
    what: str,
    coarse: float = 0.5,
    fine: float = 0.02,
    near: float = 0.98,
) -> float:
    """``wait`` for ``count() >= target`` without the watching loading the machine: a
    count that costs the database a scan (100,000 rows) is read every ``coarse`` seconds
    until it is within ``near`` of the target, then every ``fine`` seconds, so the time
    it became true is still known to about ``fine``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = count()
        if seen >= target:
            return time.perf_counter()
        time.sleep(fine if seen >= near * target else coarse)
    raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")


def wait(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.01) -> float:
    """Poll until true; the time it became true (``time.perf_counter``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.perf_counter()
        time.sleep(step)
    raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
