"""Every benchmark still runs: each ``bench/*.py --short`` as a subprocess (small sizes),
against the test Redis, printing a line for every goal it measures.

Timing is never judged here (``./dev bench --check`` does that, on a quiet machine);
this keeps the benches from rotting as the code they measure changes. Counts that must be
0 (blocked requests admitted after a fenced enable, anything refused after a fenced
disable, in-flight requests that failed, instances that disagree, jobs lost or run twice)
are judged in every run: a short run exits 1 when one is not 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.goals import goals_of

ROOT = Path(__file__).resolve().parents[2]
BENCHES = sorted(
    p.stem
    for p in (ROOT / "bench").glob("*.py")
    if not p.stem.startswith("_") and p.stem != "goals"
)


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHES)
def test_bench_runs_in_short_mode(name: str, redis_url: str) -> None:
    # The bench makes its own SQLite file and Redis prefix; nothing of the test session's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAINTENANCE_", "CELERY_"))}
    env["REDIS_URL"] = redis_url
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--short"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    timing = set(re.findall(r"^  goal (\S+): .* not judged \(short run\)", done.stdout, re.M))
    counts = set(re.findall(r"^  goal (\S+): .*   exact   MET", done.stdout, re.M))
    expected = {goal.key for goal in goals_of(name)}
    assert expected, f"bench/{name}.py measures no goal of bench/goals.py"
    assert timing == {g.key for g in goals_of(name) if not g.exact}, done.stdout
    assert counts == {g.key for g in goals_of(name) if g.exact}, done.stdout
    assert re.search(rf"^result {name}: {len(expected)} goals: ", done.stdout, re.M), done.stdout
