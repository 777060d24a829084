"""The emergency core without workers: the plan, the checks before lifting, the phases,
and the report built from what SQL holds (real Redis and SQLite)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from maintenance import EnhancedMaintenanceModeService, MaintenanceMode, ValidationError
from maintenance.domain.emergency_plan import parse_seconds
from maintenance.emergency import (
    DeactivationRefused,
    TerminationPlan,
    build_emergency_report,
    controller_for,
    fleet,
    phases,
    plan_of,
)
from maintenance.errors import ConflictError
from maintenance.job_registry import JobRegistry
from maintenance.reports import load_report, render
from maintenance.store.jobs import KIND_TERMINATED, JobRecord, JobStore


def _declare(service: EnhancedMaintenanceModeService, **kw: Any) -> Any:
    kw.setdefault("grace_period", 30)
    kw.setdefault("kill_after", 10)
    return controller_for(service).activate_emergency_mode("disk corruption", "ops", **kw)


def _registry_entry(service: EnhancedMaintenanceModeService, task_id: str, node: str) -> None:
    """An entry exactly as a worker's ``task_prerun`` writes it."""
    entry = {
        "name": "captions.generate",
        "operation": "caption_generation",
        "worker": "w9@host",
        "node": node,
        "pid": 1,
        "started": time.time() - 60,
        "state": "running",
    }
    service.redis.hset(service.keys.active_jobs, task_id, json.dumps(entry))


@pytest.mark.parametrize(
    ("value", "seconds"), [(0, 0.0), (1.5, 1.5), ("30s", 30.0), ("500ms", 0.5), ("2m", 120.0)]
)
def test_durations_of_the_ladder(value: object, seconds: float) -> None:
    assert parse_seconds(value, field="grace", maximum=3600) == seconds


@pytest.mark.parametrize("value", [-1, "soon", "2h", True, None, 4000])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        parse_seconds(value, field="grace", maximum=3600)


def test_the_plan_travels_in_the_status_only_while_the_emergency_lasts(
    service: EnhancedMaintenanceModeService,
) -> None:
    declared = _declare(service, grace_period=2, kill_after=1)
    status = service.state.load()
    plan = plan_of(status)
    assert plan == declared.plan == TerminationPlan.from_dict(plan.to_dict())  # type: ignore[union-attr]
    assert plan is not None and plan.kill_at - plan.started_at == pytest.approx(3.0)
    assert status.emergency_phase == "grace" and status.login_blocked
    assert service.redis.get(service.keys.abort_all) == status.emergency_id.encode()  # type: ignore[union-attr]
    with pytest.raises(ConflictError, match="already active"):
        _declare(service)
    controller_for(service).deactivate_emergency_mode("ops")
    assert plan_of(service.state.load()) is None
    assert service.redis.get(service.keys.abort_all) is None


def test_a_running_job_on_a_live_worker_refuses_the_lift_unless_forced(
    service: EnhancedMaintenanceModeService,
) -> None:
    declared = _declare(service)
    own = service.cache.node_id  # a live, registered node
    _registry_entry(service, "job-live", own)
    _registry_entry(service, "job-dead", "worker@gone:1:abc")
    _registry_entry(service, "job-allowed", own)
    service.allow_operation_completion("job-allowed")
    control = controller_for(service)
    with pytest.raises(DeactivationRefused) as refused:
        control.deactivate_emergency_mode("ops")
    problems = refused.value.check.problems
    assert any("job-live" in p and "still marked running" in p for p in problems)
    assert any("job-dead" in p and "stopped heartbeating" in p for p in problems)
    assert any("job-allowed" in n for n in refused.value.check.notes)
    assert service.state.load().is_active

    lifted = control.deactivate_emergency_mode("ops", force=True, requeue=False)
    assert lifted.requeue == "skipped" and not service.state.load().is_active
    report = load_report(service, declared.emergency_id)["body"]
    assert report["deactivation"]["forced"] and len(report["deactivation"]["problems"]) == 2


def test_a_worker_that_has_not_finished_its_ladder_refuses_the_lift(
    service: EnhancedMaintenanceModeService, make_service: Any
) -> None:
    worker = make_service(kind="worker").start()  # a live worker node
    declared = _declare(service)
    check = controller_for(service).check_deactivation()
    assert any("termination not finished (not started)" in p for p in check.problems)
    progress = fleet.WorkerProgress(node=worker.cache.node_id, state="done")
    progress.plan_id = declared.plan.plan_id
    fleet.FleetBoard(service.redis, service.keys).write_progress(declared.emergency_id, progress)
    assert controller_for(service).check_deactivation().ok


def test_a_ladder_still_in_its_grace_refuses_the_lift_only_while_its_worker_runs_a_job(
    service: EnhancedMaintenanceModeService, make_service: Any
) -> None:
    """The monitor ends a round early once nothing runs; a worker's ladder may still be
    waiting out the grace then. Nothing left to stop on it: a note, not a refusal."""
    worker = make_service(kind="worker").start()
    node = worker.cache.node_id
    declared = _declare(service)
    progress = fleet.WorkerProgress(node=node, state="grace")
    progress.plan_id = declared.plan.plan_id
    fleet.FleetBoard(service.redis, service.keys).write_progress(declared.emergency_id, progress)
    _registry_entry(service, "job-busy", node)
    check = controller_for(service).check_deactivation()
    assert any(f"worker {node}: termination not finished (grace)" in p for p in check.problems)
    JobRegistry(service.redis, service.keys).remove("job-busy")
    check = controller_for(service).check_deactivation()
    assert check.ok, check.problems
    assert any(f"worker {node}: ladder at grace" in n for n in check.notes)


def test_each_phase_is_written_once_and_never_backwards(
    service: EnhancedMaintenanceModeService,
) -> None:
    declared = _declare(service)
    eid, plan_id = declared.emergency_id, declared.plan.plan_id
    assert phases.advance_phase(service, eid, "terminated", "w1", plan_id)
    assert not phases.advance_phase(service, eid, "terminated", "w2", plan_id)
    assert not phases.advance_phase(service, eid, "terminating", "w2", plan_id)
    assert service.state.load().emergency_phase == "terminated"


def test_the_report_names_stopped_jobs_sessions_and_blocked_attempts(
    service: EnhancedMaintenanceModeService,
) -> None:
    declared = _declare(service)
    activation = declared.activation.status.activation_id
    store = JobStore(service.db)
    for task_id, outcome in (("a1", "aborted"), ("t1", "terminated"), ("k1", "killed")):
        store.record(
            JobRecord(
                original_id=task_id,
                task_name="captions.generate",
                args=[task_id],
                kind=KIND_TERMINATED,
                state=KIND_TERMINATED,
                outcome=outcome,
                worker="w1@host",
                activation_id=activation,
            )
        )
    for _ in range(3):
        service.record_blocked_attempt("caption_generation", {"username": "ann"})
    service.record_blocked_attempt("authentication", {"username": "ben"}, channel="login")
    body = build_emergency_report(service, declared.emergency_id)
    assert [j["task_id"] for j in body["jobs"]["aborted"]] == ["a1"]
    assert [j["task_id"] for j in body["jobs"]["terminated"]] == ["t1"]
    assert [j["task_id"] for j in body["jobs"]["killed"]] == ["k1"]
    assert body["blocked_attempts"] == {"authentication": 1, "caption_generation": 3}
    assert body["sessions"]["logins_refused"] == 1 and body["ongoing"]
    assert body["trigger"] == {"kind": "person", "by": "ops"}
    stored = controller_for(service).create_emergency_report(declared.emergency_id)
    markdown = render(stored, "md")
    assert "* **Killed (SIGKILL)**: 1" in markdown and "| k1 |" in markdown
    html = render(stored, "html")
    assert "<table>" in html and "Emergency" in html
    assert service.state.load().mode is MaintenanceMode.EMERGENCY
