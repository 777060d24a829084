"""``maintenance emergency``: declares with live progress and the report id, lifts with the
checks and the requeue, and answers bad input with exit 2 and one line."""

from __future__ import annotations

import os
import subprocess

import pytest

from maintenance.cli import main
from maintenance.store.jobs import REQUEUED, JobStore
from tests.celery.conftest import ROOT
from tests.helpers import wait_for
from tests.support import MAINTENANCE_CLI

from .conftest import EmergencyFleet, hold_id, labels


def _cli(ef: EmergencyFleet, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAINTENANCE_CLI, *args],
        cwd=ROOT,
        env={**os.environ, **ef.fleet.env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["emergency"], "give --reason"),
        (["emergency", "--reason", "x", "--grace", "soon"], "grace 'soon' is not a duration"),
        (["emergency", "--reason", "x", "--kill-after", "3h"], "kill_after"),
        (["emergency", "--reason", " "], "reason is required"),
        (["emergency", "--off", "--reason", "x"], "--off does not combine"),
        (["emergency", "--force"], "go with --off"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before any store is touched (in-process: no service is even built)."""
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


@pytest.mark.slow
def test_declare_prints_progress_and_the_report_id_then_lift_requeues(
    emergency_fleet: EmergencyFleet,
) -> None:
    ef = emergency_fleet
    ef.reset()
    label = labels("stubborn")["stubborn"]
    hold = hold_id()
    task_id = ef.start("stubborn", label, hold, "e1")
    out = _cli(
        ef, "emergency", "--reason", "payment provider leak", "--grace", "1s", "--kill-after", "5s"
    )
    assert out.returncode == 0, out.stderr
    status = ef.fleet.service.state.load()
    eid = status.emergency_id
    assert status.mode.value == "emergency" and eid
    text = out.stdout
    assert f"EMERGENCY {eid} declared by pytest (cli);" in text
    assert "(trigger:" not in text  # said once
    assert "[grace] running 1" in text  # piped: plain progress lines, no countdown
    assert "\r" not in text and "\x1b" not in text
    assert "terminated 1" in text
    assert "1 terminated, 0 killed" in text
    assert f"Emergency id (and report id): {eid}" in text
    ef.fleet.release(hold)

    off = _cli(ef, "emergency", "--off", "-A", "tests.emergency.app")
    assert off.returncode == 0, off.stderr
    record = JobStore(ef.fleet.service.db).get(task_id)
    assert record is not None and record.state == REQUEUED
    assert f"{task_id} -> {record.requeued_id}" in off.stdout
    assert f"maintenance report --emergency {eid}" in off.stdout
    wait_for(lambda: ef.count("runs", label) == 1, timeout=20, what="requeued copy ran")
    assert not ef.fleet.service.state.load().is_active
