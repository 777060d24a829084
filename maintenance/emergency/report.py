"""The emergency report: timeline, every stopped job and its recovery, sessions, blocked
attempts, duration -- built from SQL (and Redis counters), stored under the emergency id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..attempts import blocked_counters, counts_by_operation
from ..domain.emergency_plan import OUTCOMES, TerminationPlan
from ..domain.history import MaintenanceEvent
from ..domain.modes import OperationType
from ..domain.status import utcnow
from ..errors import NotFound
from ..redisconn import REDIS_ERRORS
from ..reports import load_report, md_table, register_renderer, save_report
from ..store.jobs import KIND_DEFERRED, KIND_TERMINATED, REQUEUED, JobRecord, JobStore

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService

KIND = "emergency"
_MAX_EVENTS = 20_000


def _activation_of(service: EnhancedMaintenanceModeService, emergency_id: str) -> MaintenanceEvent:
    for event in service.events.history(1000, kinds=("emergency_activated",)):
        if event.details.get("emergency_id") == emergency_id:
            return event
    raise NotFound(f"no emergency with id {emergency_id!r}")


def _job_row(record: JobRecord) -> dict[str, Any]:
    return {
        "task_id": record.original_id,
        "task": record.task_name,
        "worker": record.worker,
        "queue": record.queue,
        "outcome": record.outcome,
        "state": record.state,
        "requeued_id": record.requeued_id,
        "rerun_safe": record.rerun_safe,
        "reason": record.reason,
        "stopped_at": record.created_at.isoformat() if record.created_at else None,
    }


def _blocked_attempts(
    service: EnhancedMaintenanceModeService, activation_id: str
) -> dict[str, int]:
    try:
        service.attempts.flush_counts()
        counted = blocked_counters(
            service.redis, service.keys, activation_id, service.operations.names()
        )
    except REDIS_ERRORS:
        counted = {}
    # Redis counts every attempt; the SQL log (sampled) survives a Redis restart.
    logged = counts_by_operation(service, activation_id)
    return {op: max(counted.get(op, 0), logged.get(op, 0)) for op in {*counted, *logged}}


def _describe(event: MaintenanceEvent) -> str:
    d = event.details
    kind = event.kind
    if kind in ("maintenance_enabled", "maintenance_updated"):
        return f"{d.get('mode', '?')} maintenance {kind.split('_')[1]} by {event.actor}"
    if kind == "emergency_activated":
        lagging = d.get("lagging_nodes") or []
        fence = (
            f"fenced on {d.get('applied_nodes')} node(s) in {d.get('waited_ms')} ms"
            if d.get("fenced")
            else f"NOT fenced ({d.get('propagation')}; lagging: {', '.join(lagging) or '-'})"
        )
        return (
            f"emergency declared by {d.get('triggered_by')} (trigger: {d.get('trigger')}); "
            f"grace {d.get('grace_period')} s, SIGKILL {d.get('kill_after')} s later; {fence}; "
            f"{len(d.get('running_jobs') or [])} job(s) running"
        )
    if kind == "emergency_phase":
        return f"phase: {d.get('phase') or d.get('emergency_phase')}"
    if kind == "sessions_invalidated":
        return f"{d.get('count', 0)} non-admin session(s) invalidated (epoch {d.get('epoch')})"
    if kind == "job_terminated":
        return f"{d.get('task')}[{d.get('task_id')}] on {d.get('worker')}: {d.get('outcome')}"
    if kind == "emergency_unterminable":
        return (
            f"{d.get('worker')} ({d.get('pool')} pool) cannot terminate "
            f"{len(d.get('jobs') or [])} job(s)"
        )
    if kind == "emergency_deactivation_refused":
        return "lift refused: " + "; ".join(d.get("problems") or [])
    if kind == "emergency_deactivated":
        return f"emergency lifted by {event.actor}" + (" (forced)" if d.get("forced") else "")
    if kind == "jobs_requeued":
        return f"{d.get('requeued', 0)} job(s) requeued, {d.get('failed', 0)} failed"
    if kind == "maintenance_disabled":
        return f"maintenance disabled by {event.actor}"
    return kind.replace("_", " ")


def _timeline(events: list[MaintenanceEvent], plan: TerminationPlan | None) -> list[dict[str, Any]]:
    rows = [
        {"at": e.at.isoformat(), "event": e.kind, "actor": e.actor, "detail": _describe(e)}
        for e in events
    ]
    if plan is not None:
        for when, what in ((plan.sigterm_at, "grace period ends"), (plan.kill_at, "SIGKILL due")):
            at = datetime.fromtimestamp(when, UTC)
            rows.append(
                {
                    "at": at.isoformat(),
                    "event": "deadline",
                    "actor": None,
                    "detail": what + (" (planned)" if at > utcnow() else ""),
                }
            )
    return sorted(rows, key=lambda r: str(r["at"]))


def build_emergency_report(
    service: EnhancedMaintenanceModeService, emergency_id: str
) -> dict[str, Any]:
    """The report body of emergency ``emergency_id`` (``NotFound`` if there is none)."""
    declared = _activation_of(service, emergency_id)
    activation_id = declared.activation_id
    events = list(reversed(service.events.history(_MAX_EVENTS, activation_id=activation_id)))
    plan_raw = declared.details.get("plan")
    plan = TerminationPlan.from_dict(plan_raw) if isinstance(plan_raw, dict) else None
    store = JobStore(service.db)
    stopped = store.find(kind=KIND_TERMINATED, activation_id=activation_id, limit=None)
    deferred = store.find(kind=KIND_DEFERRED, activation_id=activation_id, limit=None)
    by_outcome = {o: [_job_row(r) for r in stopped if r.outcome == o] for o in OUTCOMES}
    unterminable = [
        {"task_id": job, "worker": e.details.get("worker"), "pool": e.details.get("pool")}
        for e in events
        if e.kind == "emergency_unterminable"
        for job in e.details.get("jobs") or []
    ]
    accounted = {r.original_id for r in stopped} | {u["task_id"] for u in unterminable}
    running = list(declared.details.get("running_jobs") or [])
    lifted = next((e for e in events if e.kind == "emergency_deactivated"), None)
    ended = lifted or next((e for e in events if e.kind == "maintenance_disabled"), None)
    started = declared.at
    finished = ended.at if ended else None
    blocked = _blocked_attempts(service, str(activation_id))
    return {
        "kind": KIND,
        "emergency_id": emergency_id,
        "activation_id": activation_id,
        "reason": declared.reason,
        "trigger": {
            "kind": declared.details.get("trigger"),
            "by": declared.details.get("triggered_by"),
        },
        "started_at": started.isoformat(),
        "ended_at": finished.isoformat() if finished else None,
        "ongoing": finished is None,
        "duration_seconds": round(((finished or utcnow()) - started).total_seconds(), 3),
        "plan": plan.to_dict() if plan else None,
        "propagation": {
            k: declared.details.get(k)
            for k in ("fenced", "propagation", "applied_nodes", "lagging_nodes", "waited_ms")
        },
        "jobs": {
            "running_at_activation": len(running),
            "finished_on_their_own": [j for j in running if j not in accounted],
            **by_outcome,
            "unterminable": unterminable,
            "requeued": [
                {"task_id": r.original_id, "task": r.task_name, "new_id": r.requeued_id}
                for r in [*stopped, *deferred]
                if r.state == REQUEUED
            ],
            "not_rerun_safe": [_job_row(r) for r in stopped if not r.rerun_safe],
            "deferred": len(deferred),
        },
        "sessions": {
            "invalidated": sum(
                int(e.details.get("count") or 0) for e in events if e.kind == "sessions_invalidated"
            ),
            "logins_refused": blocked.get(OperationType.AUTHENTICATION.value, 0),
        },
        "critical_admin_only": any(e.kind == "critical_admin_only_enabled" for e in events)
        or bool(declared.details.get("critical_admin_only")),
        "blocked_attempts": dict(sorted(blocked.items())),
        "blocked_attempts_total": sum(blocked.values()),
        "deactivation": {
            "by": lifted.actor if lifted else None,
            "at": lifted.at.isoformat() if lifted else None,
            "forced": bool(lifted and lifted.details.get("forced")),
            "problems": list(lifted.details.get("problems") or []) if lifted else [],
        },
        "timeline": _timeline(events, plan),
        "generated_at": utcnow().isoformat(),
    }


def create_emergency_report(
    service: EnhancedMaintenanceModeService, emergency_id: str
) -> dict[str, Any]:
    """Build and store (again, replacing an older version) the report of ``emergency_id``.

    Stored under report id == ``emergency_id`` so ``maintenance report
    --emergency ID`` finds it; returns the stored report.
    """
    body = build_emergency_report(service, emergency_id)
    # Two writers at once (the lifter and a worker that requeued) may replace it.
    save_report(service, KIND, body, body["activation_id"], emergency_id, replace=True)
    return load_report(service, emergency_id)


def _job_table(jobs: list[dict[str, Any]]) -> list[str]:
    return md_table(
        ["task id", "task", "worker", "state", "requeued as"],
        [
            [j["task_id"], j["task"], j["worker"] or "-", j["state"], j["requeued_id"] or "-"]
            for j in jobs
        ],
    )


@register_renderer(KIND)
def render_markdown(body: dict[str, Any]) -> str:
    """The report as Markdown (HTML is made from it)."""
    jobs = body["jobs"]
    trigger = body["trigger"]
    lines = [
        f"# Emergency {body['emergency_id']}",
        "",
        f"* **Reason**: {body['reason']}",
        f"* **Declared by**: {trigger['by']} (trigger: {trigger['kind']})",
        f"* **Started**: {body['started_at']}",
        f"* **Ended**: {body['ended_at'] or 'still on'}",
        f"* **Duration**: {body['duration_seconds']} s",
        f"* **Fenced**: {body['propagation'].get('fenced')} "
        f"({body['propagation'].get('applied_nodes')} node(s), "
        f"{body['propagation'].get('waited_ms')} ms)",
        f"* **Critical admins only**: {'yes' if body['critical_admin_only'] else 'no'}",
        "",
        "## Jobs",
        "",
        f"* **Running at activation**: {jobs['running_at_activation']}",
        f"* **Finished on their own**: {len(jobs['finished_on_their_own'])}",
        f"* **Stopped cooperatively**: {len(jobs['aborted'])}",
        f"* **Terminated (SIGTERM)**: {len(jobs['terminated'])}",
        f"* **Killed (SIGKILL)**: {len(jobs['killed'])}",
        f"* **Interrupted (a write or publish refused)**: {len(jobs['interrupted'])}",
        f"* **Could not be terminated**: {len(jobs['unterminable'])}",
        f"* **Requeued**: {len(jobs['requeued'])}",
        f"* **Not safe to rerun (not requeued)**: {len(jobs['not_rerun_safe'])}",
        f"* **Deferred while it lasted**: {jobs['deferred']}",
    ]
    for outcome, title in (
        ("aborted", "Stopped cooperatively"),
        ("terminated", "Terminated"),
        ("killed", "Killed"),
        ("interrupted", "Interrupted (a write or publish refused)"),
    ):
        if jobs[outcome]:
            lines += ["", f"### {title}", "", *_job_table(jobs[outcome])]
    if jobs["unterminable"]:
        lines += ["", "### Could not be terminated", ""]
        lines += md_table(
            ["task id", "worker", "pool"],
            [[u["task_id"], u["worker"], u["pool"]] for u in jobs["unterminable"]],
        )
    needing = [j for j in jobs["not_rerun_safe"] if j["state"] == "terminated"]
    if needing:
        lines += ["", "### Needing action (not safe to rerun, not requeued)", ""]
        lines += md_table(
            ["task id", "task", "outcome", "reason"],
            [[j["task_id"], j["task"], j["outcome"], j.get("reason") or "-"] for j in needing],
        )
    if jobs["requeued"]:
        lines += ["", "### Requeued", ""]
        lines += md_table(
            ["original id", "task", "new id"],
            [[r["task_id"], r["task"], r["new_id"]] for r in jobs["requeued"]],
        )
    lines += [
        "",
        "## Sessions",
        "",
        f"* **Non-admin sessions invalidated**: {body['sessions']['invalidated']}",
        f"* **Logins refused**: {body['sessions']['logins_refused']}",
        "",
        "## Blocked attempts",
        "",
    ]
    attempts = body["blocked_attempts"]
    lines += (
        md_table(["operation", "attempts"], [[op, n] for op, n in attempts.items()])
        if attempts
        else ["* none"]
    )
    deactivation = body["deactivation"]
    if deactivation["by"]:
        lines += ["", "## Deactivation", "", f"* **By**: {deactivation['by']}"]
        lines.append(f"* **Forced**: {'yes' if deactivation['forced'] else 'no'}")
        lines += [f"* problem overridden: {p}" for p in deactivation["problems"]]
    lines += ["", "## Timeline", ""]
    lines += md_table(
        ["at", "event", "who", "detail"],
        [[r["at"], r["event"], r["actor"] or "-", r["detail"]] for r in body["timeline"]],
    )
    return "\n".join(lines) + "\n"
