"""The goals table (bench/goals.py): how a result is judged against the noise of its run,
that ``--check`` turns a miss into exit status 1, and that docs/benchmarks.md lists every
goal with the table's number."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import pytest

from bench._common import MET, MISSED, WITHIN_NOISE, Report, judge
from bench.goals import BY_KEY, GOALS, goals_of

ROOT = Path(__file__).resolve().parents[2]


def args(check: bool = True, short: bool = False) -> argparse.Namespace:
    return argparse.Namespace(check=check, short=short)


def test_a_ratio_past_its_limit_by_less_than_the_noise_is_not_a_miss() -> None:
    goal = BY_KEY["http_hook.ratio"]  # <= 1.03x
    assert judge(goal, 1.02, noise=0.01)[0] == MET
    assert judge(goal, 1.035, noise=0.01)[0] == WITHIN_NOISE
    verdict, over = judge(goal, 1.05, noise=0.01)
    assert verdict == MISSED
    assert over == pytest.approx(0.02)


def test_a_goal_to_reach_is_missed_below_it() -> None:
    goal = BY_KEY["status_read.cheaper"]  # >= 50x
    assert judge(goal, 60, noise=5)[0] == MET
    assert judge(goal, 47, noise=5)[0] == WITHIN_NOISE
    assert judge(goal, 40, noise=5)[0] == MISSED


def test_counts_and_single_measurements_are_judged_without_margin() -> None:
    assert judge(BY_KEY["activation_under_load.admitted_requests"], 1, noise=100)[0] == MISSED
    assert judge(BY_KEY["emergency.stop"], 2.1, noise=None)[0] == MISSED


def test_a_value_never_measured_is_a_miss_whatever_the_noise() -> None:
    goal = BY_KEY["status_api.fanout"]
    assert judge(goal, math.inf, noise=math.inf)[0] == MISSED
    assert judge(goal, 150, noise=math.inf)[0] == MISSED


def test_check_exits_1_on_a_miss_and_says_by_how_much(capsys: pytest.CaptureFixture[str]) -> None:
    report = Report("publish_gate", args())
    report.goal("publish_gate.ratio", 1.10, noise=0.01)
    with pytest.raises(SystemExit) as stopped:
        report.finish()
    assert stopped.value.code == 1
    out = capsys.readouterr().out
    assert "goal publish_gate.ratio: 1.100 x   limit <= 1.02 x   noise +/-0.010 x" in out
    assert "MISSED by 0.080 x (7.8%) (beyond noise)" in out


def test_without_check_or_in_a_short_run_a_miss_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for options in (args(check=False), args(check=True, short=True)):
        report = Report("publish_gate", options)
        report.goal("publish_gate.ratio", 1.10, noise=0.01)
        report.finish()
    assert "not judged (short run)" in capsys.readouterr().out


def test_a_bench_that_leaves_a_goal_out_fails() -> None:
    report = Report("emergency", args(check=False))
    report.goal("emergency.stop", 1.0, None)
    with pytest.raises(SystemExit, match=r"goals not reported: emergency\.requeue"):
        report.finish()


def test_every_goal_is_measured_by_a_bench_or_says_why_not() -> None:
    scripts = {p.stem for p in (ROOT / "bench").glob("*.py")}
    for goal in GOALS:
        assert goal.pending or goal.bench in scripts, goal
    for name in scripts - {"goals"}:
        if not name.startswith("_"):
            assert goals_of(name), f"bench/{name}.py has no goal in bench/goals.py"


def test_docs_list_every_goal_with_its_number() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "bench/goals.py" in text
    rows = dict(re.findall(r"^\| `([a-z_0-9.]+)` \|[^|]*\| ([^|]+) \|", text, re.M))
    for goal in GOALS:
        assert goal.key in rows, f"{goal.key} is not in the goals table of docs/benchmarks.md"
        assert rows[goal.key].strip() == goal.limit_text(), (goal.key, rows[goal.key])


def test_a_short_run_still_fails_on_a_count_that_must_be_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = Report("emergency", args(check=False, short=True))
    report.goal("emergency.stop", 9.0, None)  # timing: not judged in a short run
    report.goal("emergency.requeue", 0.5, None)
    report.goal("emergency.lost", 0, None)
    report.goal("emergency.duplicated", 1, None)
    with pytest.raises(SystemExit) as exited:
        report.finish()
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "goal emergency.stop: 9.000 s" in out and "not judged (short run)" in out
    assert "goal emergency.duplicated: 1   limit = 0   exact   MISSED" in out
