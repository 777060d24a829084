"""The termination ladder on two real prefork workers: a cooperative job stops in the grace
period, a job ignoring the flag is SIGTERMed, a job ignoring SIGTERM is SIGKILLed, a job
that finishes in time counts as completed; after the lift every stopped job runs again once.

One emergency is declared for the module (it takes grace + kill_after seconds); each
test checks one behaviour of it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from celery.result import AsyncResult

from maintenance.emergency import EmergencyActivation, EmergencyDeactivation, TerminationResult
from maintenance.emergency.fleet import FleetBoard
from maintenance.job_registry import JobRegistry
from maintenance.reports import load_report, render
from maintenance.store.jobs import REQUEUED, TERMINATED, JobRecord, JobStore
from tests.celery.conftest import ROOT
from tests.helpers import wait_for
from tests.support import MAINTENANCE_CLI
from workers import EmergencyMaintenanceHandler

from .conftest import EmergencyFleet, hold_id, labels

pytestmark = pytest.mark.slow

GRACE, KILL_AFTER = 2.0, 1.5
#: label -> (task, worker)
JOBS = {
    "coop": ("cooperative", "e1"),
    "stubborn": ("stubborn", "e1"),
    "unkillable": ("unkillable", "e2"),
    "quick": ("stubborn", "e2"),
    "unsafe": ("unsafe", "e2"),
    "exempt": ("stubborn", "e1"),  # allow_operation_completion
}


@dataclass
class Run:
    """Everything one emergency left behind."""

    ef: EmergencyFleet
    label: dict[str, str]
    ids: dict[str, str]
    pids: dict[str, int]
    activation: EmergencyActivation
    termination: TerminationResult
    records: dict[str, JobRecord]
    phases: list[tuple[str, dict[str, Any]]]
    deactivation: EmergencyDeactivation
    listed_after_sigterm: set[str]

    def record(self, job: str) -> JobRecord:
        return self.records[self.ids[job]]

    def at(self, when: float) -> datetime:
        return datetime.fromtimestamp(when, UTC)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.fixture(scope="module")
def run(emergency_fleet: EmergencyFleet) -> Run:
    ef = emergency_fleet
    ef.reset()
    fleet = ef.fleet
    label = labels(*JOBS)
    hold, quick_hold = hold_id(), hold_id()
    ids = {
        job: ef.start(task, label[job], quick_hold if job == "quick" else hold, worker)
        for job, (task, worker) in JOBS.items()
    }
    pids = {job: ef.pid(label[job]) for job in JOBS}
    fleet.service.allow_operation_completion(ids["exempt"])
    handler = EmergencyMaintenanceHandler(fleet.service, fleet.app)
    activation = handler.activate_emergency_mode(
        "primary database corrupt", "alice", GRACE, KILL_AFTER, "person"
    )
    fleet.release(quick_hold)

    def e2_terminating() -> bool:
        board = FleetBoard(fleet.service.redis, fleet.service.keys)
        progress = board.read_progress(activation.emergency_id).values()
        return any(
            p.hostname and p.hostname.startswith("e2@") and p.state != "grace" for p in progress
        )

    wait_for(e2_terminating, timeout=GRACE + 10, what="e2 past its grace period")
    listed_after_sigterm = set(JobRegistry(fleet.service.redis, fleet.service.keys).all())
    assert handler.termination is not None
    termination = handler.termination.result(timeout=GRACE + KILL_AFTER + 40)
    store = JobStore(fleet.service.db)
    records = {r.original_id: r for r in store.find(limit=None)}
    activation_id = activation.activation.status.activation_id
    phases = [
        (str(e.details.get("phase")), e.details)
        for e in reversed(
            fleet.service.history(200, kinds=("emergency_phase",), activation_id=activation_id)
        )
    ]
    fleet.release(hold)
    deactivation = handler.deactivate_emergency_mode("alice")
    wait_for(
        lambda: all(ef.count("runs", label[j]) >= 1 for j in ("coop", "stubborn", "unkillable")),
        timeout=30,
        what="requeued copies ran",
    )
    return Run(
        ef,
        label,
        ids,
        pids,
        activation,
        termination,
        records,
        phases,
        deactivation,
        listed_after_sigterm,
    )


def test_activation_is_fenced_and_says_who_triggered_it(run: Run) -> None:
    """Every live node applied EMERGENCY before activation returned; the trigger is logged."""
    assert run.activation.fenced and not run.activation.activation.lagging_nodes
    assert len(run.activation.activation.applied_nodes) >= 2  # both worker main processes
    [declared] = [
        e
        for e in run.ef.fleet.service.history(50, kinds=("emergency_activated",))
        if e.details["emergency_id"] == run.activation.emergency_id
    ]
    assert declared.details["trigger"] == "person"
    assert declared.details["triggered_by"] == "alice"
    assert declared.details["emergency_id"] == run.activation.emergency_id


def test_cooperative_job_stops_within_the_grace_period_and_is_recorded_completed_by_abort(
    run: Run,
) -> None:
    record = run.record("coop")
    assert record.outcome == "aborted" and record.kind == TERMINATED
    assert record.created_at is not None
    assert record.created_at < run.at(run.activation.plan.sigterm_at)
    assert run.ef.count("aborted", run.label["coop"]) == 1
    assert record.args[0] == run.label["coop"]
    assert record.worker is not None and record.worker.startswith("e1@")


def test_job_ignoring_the_flag_is_sigtermed_after_the_grace_period(run: Run) -> None:
    record = run.record("stubborn")
    assert record.outcome == "terminated"
    assert record.created_at is not None
    assert record.created_at >= run.at(run.activation.plan.sigterm_at)
    assert _gone(run.pids["stubborn"])
    # Celery's own revoke said REVOKED (``test_result_link.py``); after the lift the
    # result backend says where the job runs again.
    original = AsyncResult(run.ids["stubborn"], app=run.ef.fleet.app)
    assert original.state == "REQUEUED"
    after = JobStore(run.ef.fleet.service.db).get(run.ids["stubborn"])
    assert after is not None and original.result == {"requeued_as": after.requeued_id}


def test_job_ignoring_sigterm_is_sigkilled_after_kill_after(run: Run) -> None:
    record = run.record("unkillable")
    assert record.outcome == "killed"
    assert record.updated_at is not None
    assert record.updated_at >= run.at(run.activation.plan.kill_at)
    assert _gone(run.pids["unkillable"])
    events = run.ef.fleet.service.history(200, kinds=("job_terminated",))
    outcomes = [e.details["outcome"] for e in events if e.details["task_id"] == record.original_id]
    assert sorted(outcomes) == ["killed", "terminated"]
    # Between SIGTERM and SIGKILL it still counted as running.
    assert run.ids["unkillable"] in run.listed_after_sigterm
    service = run.ef.fleet.service
    assert run.ids["unkillable"] not in JobRegistry(service.redis, service.keys).all()


def test_job_finishing_in_the_grace_period_counts_as_completed(run: Run) -> None:
    assert run.ids["quick"] not in run.records
    assert run.ids["quick"] in run.termination.finished_on_their_own
    assert run.ef.count("runs", run.label["quick"]) == 1
    assert run.ef.count("starts", run.label["quick"]) == 1


def test_job_allowed_to_complete_runs_on_and_is_not_stopped(run: Run) -> None:
    assert run.ids["exempt"] not in run.records
    wait_for(lambda: run.ef.count("runs", run.label["exempt"]) == 1, what="exempt job done")
    assert run.ef.count("starts", run.label["exempt"]) == 1
    assert run.ef.count("aborted", run.label["exempt"]) == 0


def test_status_went_through_grace_terminating_terminated_with_counts(run: Run) -> None:
    assert [phase for phase, _ in run.phases] == ["grace", "terminating", "terminated"]
    final = run.phases[-1][1]["emergency_counts"]
    assert final == {"aborted": 1, "terminated": 2, "killed": 1}
    assert run.termination.finished and not run.termination.timed_out


def test_every_stopped_job_is_requeued_once_and_runs_to_completion(run: Run) -> None:
    requeued = dict(run.deactivation.requeued)
    store = JobStore(run.ef.fleet.service.db)
    for job in ("coop", "stubborn", "unkillable"):
        record = store.get(run.ids[job])
        assert record is not None and record.state == REQUEUED
        assert requeued[run.ids[job]] == record.requeued_id != run.ids[job]
        assert run.ef.count("runs", run.label[job]) == 1  # the copy completed, once
        assert run.ef.count("starts", run.label[job]) == 2  # the original and the copy
    assert run.deactivation.check.ok and run.deactivation.requeue == "done"


def test_a_task_not_safe_to_rerun_is_listed_not_requeued(run: Run) -> None:
    record = JobStore(run.ef.fleet.service.db).get(run.ids["unsafe"])
    assert record is not None and record.state == TERMINATED and not record.rerun_safe
    assert [j["original_id"] for j in run.deactivation.not_rerun_safe] == [run.ids["unsafe"]]
    assert run.ef.count("runs", run.label["unsafe"]) == 0


def test_the_report_lists_every_stopped_job_and_the_timeline(run: Run) -> None:
    eid = run.activation.emergency_id
    assert run.deactivation.report_id == eid
    body = load_report(run.ef.fleet.service, eid)["body"]
    jobs = body["jobs"]
    assert [j["task_id"] for j in jobs["aborted"]] == [run.ids["coop"]]
    assert {j["task_id"] for j in jobs["terminated"]} == {run.ids["stubborn"], run.ids["unsafe"]}
    assert [j["task_id"] for j in jobs["killed"]] == [run.ids["unkillable"]]
    assert {r["task_id"] for r in jobs["requeued"]} == {
        run.ids[j] for j in ("coop", "stubborn", "unkillable")
    }
    assert run.ids["quick"] in jobs["finished_on_their_own"]
    assert body["trigger"] == {"kind": "person", "by": "alice"}
    events = [row["event"] for row in body["timeline"]]
    for kind in ("emergency_activated", "deadline", "job_terminated", "emergency_deactivated"):
        assert kind in events
    assert body["duration_seconds"] >= GRACE + KILL_AFTER


def test_maintenance_report_shows_the_emergency(run: Run) -> None:
    """``maintenance report --emergency ID`` in Markdown and HTML names every stopped job."""
    eid = run.activation.emergency_id
    env = run.ef.fleet.env
    out = subprocess.run(
        [MAINTENANCE_CLI, "report", "--emergency", eid, "--format", "md"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f"# Emergency {eid}" in out.stdout
    for job in ("coop", "stubborn", "unkillable", "unsafe"):
        assert run.ids[job] in out.stdout
    html = render(load_report(run.ef.fleet.service, eid), "html")
    assert "<h1>Emergency" in html and run.ids["unkillable"] in html
