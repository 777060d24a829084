"""TEST-mode rehearsals: what would have been blocked, whether the fleet followed, a verdict.

``build_test_report`` inspects the current (or a given) TEST activation;
``disable_maintenance`` stores one automatically when a rehearsal ends;
``reset_rehearsal`` clears the counters so a rehearsal can start over.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import timeit
from collections import Counter
from typing import TYPE_CHECKING, Any

from . import attempts
from .domain.modes import MaintenanceMode, OperationType
from .domain.status import utcnow
from .job_registry import JobRegistry
from .redisconn import REDIS_ERRORS
from .reports import md_table, register_renderer

if TYPE_CHECKING:
    from .service import EnhancedMaintenanceModeService

HOT_PATH_BUDGET_US = 50.0


def _activation(
    service: EnhancedMaintenanceModeService, activation_id: str | None
) -> dict[str, Any]:
    status = service.status
    if activation_id is None:
        activation_id = status.activation_id
    events = service.history(500, activation_id=activation_id) if activation_id else []
    started = next((e for e in reversed(events) if e.kind == "maintenance_enabled"), None)
    ended = next((e for e in events if e.kind == "maintenance_disabled"), None)
    propagation = next((e for e in events if e.kind == "propagation"), None)
    return {
        "activation_id": activation_id,
        "active": status.is_active and status.activation_id == activation_id,
        "mode": (started.details.get("mode") if started else status.mode.value),
        "reason": started.reason if started else status.reason,
        "started_by": started.actor if started else status.enabled_by,
        "started_at": started.at.isoformat() if started else None,
        "ended_at": ended.at.isoformat() if ended else None,
        "would_block": started.details.get("blocked_operations", []) if started else [],
        "propagation": propagation.details if propagation else None,
    }


def _would_blocks(service: EnhancedMaintenanceModeService, activation_id: str) -> dict[str, Any]:
    logged = attempts.would_block_log(service.db, activation_id)
    counted: dict[str, int] = {}
    with contextlib.suppress(*REDIS_ERRORS):
        counted = attempts.would_block_counters(service.redis, service.keys, activation_id)
    by_channel: Counter[str] = Counter()
    by_operation: Counter[str] = Counter()
    for op, channel, n in logged.by_operation_and_channel:
        by_channel[channel] += n
        by_operation[op] += n
    return {
        "counted_by_operation": counted or dict(by_operation),
        "logged_by_operation": dict(by_operation),
        "logged_by_channel": dict(by_channel),
        "distinct_users": logged.distinct_users,
        "top_endpoints": [
            {"endpoint": e, "operation": o, "attempts": n} for e, o, n in logged.top_endpoints
        ],
    }


def _fleet(service: EnhancedMaintenanceModeService) -> dict[str, Any]:
    version = service.status.version
    try:
        nodes = service.nodes()
        running = JobRegistry(service.redis, service.keys).all().values()
    except REDIS_ERRORS as exc:
        return {"error": str(exc)}
    kinds = Counter(n.kind for n in nodes.values())
    behind = sorted(n.node_id for n in nodes.values() if n.applied_version < version)
    by_op = Counter(job.operation for job in running)
    return {
        "live_nodes": len(nodes),
        "nodes_by_kind": dict(kinds),
        "nodes_behind": behind,
        "running_jobs": sum(by_op.values()),
        "running_jobs_by_operation": dict(by_op),
    }


def _performance(service: EnhancedMaintenanceModeService) -> dict[str, float]:
    op = OperationType.CAPTION_GENERATION
    user = {"role": "user"}
    rounds = timeit.repeat(lambda: service.decide(op, user), number=2000, repeat=5)
    hot_us = statistics.median(rounds) / 2000 * 1e6
    redis_ms = sql_ms = float("nan")
    try:
        start = time.perf_counter()
        service.redis.ping()
        redis_ms = (time.perf_counter() - start) * 1000
    except REDIS_ERRORS:
        pass
    try:
        start = time.perf_counter()
        service.state.load()
        sql_ms = (time.perf_counter() - start) * 1000
    except Exception:  # reported as NaN: the report must still be written
        pass
    return {
        "hot_path_check_us": round(hot_us, 3),
        "redis_rtt_ms": round(redis_ms, 3),
        "sql_read_ms": round(sql_ms, 3),
    }


def _check(name: str, outcome: str, detail: str) -> dict[str, str]:
    return {"check": name, "result": outcome, "detail": detail}


def _checks(report: dict[str, Any], degraded: str | None) -> list[dict[str, str]]:
    prop = report["activation"]["propagation"] or {}
    would = report["would_block"]
    fleet = report["fleet"]
    channels = would["logged_by_channel"]
    checks = [
        _check(
            "every live node applied the rehearsal",
            "pass" if prop.get("fenced") else ("fail" if prop else "warn"),
            (
                f"{prop.get('applied', 0)} node(s) in {prop.get('waited_ms', '?')} ms; "
                f"lagging: {', '.join(prop.get('lagging', [])) or 'none'}"
            )
            if prop
            else "no propagation measurement recorded",
        ),
        _check("Redis and SQL healthy", "fail" if degraded else "pass", degraded or "ok"),
        _check(
            "web hook recorded would-be-blocked requests",
            "pass" if channels.get("http") else "warn",
            f"{channels.get('http', 0)} request(s)"
            if channels.get("http")
            else "no blocked-kind request was seen during the rehearsal",
        ),
        _check(
            "publish gate recorded would-be-blocked jobs",
            "pass" if channels.get("celery") or channels.get("worker") else "warn",
            f"{channels.get('celery', 0)} publish(es), {channels.get('worker', 0)} queued job(s)",
        ),
        _check(
            "workers follow the control plane",
            "pass" if fleet.get("nodes_by_kind", {}).get("worker") else "warn",
            f"{fleet.get('nodes_by_kind', {}).get('worker', 0)} worker node(s) live",
        ),
        _check(
            "hot-path check within budget",
            "pass" if report["performance"]["hot_path_check_us"] <= HOT_PATH_BUDGET_US else "fail",
            f"{report['performance']['hot_path_check_us']} us per check "
            f"(budget {HOT_PATH_BUDGET_US:.0f} us)",
        ),
    ]
    return checks


def build_test_report(
    service: EnhancedMaintenanceModeService, activation_id: str | None = None
) -> dict[str, Any]:
    """A validation report for a TEST activation (the current one by default)."""
    activation = _activation(service, activation_id)
    aid = activation["activation_id"] or "none"
    status = service.get_maintenance_status()
    report: dict[str, Any] = {
        "generated_at": utcnow().isoformat(),
        "activation": activation,
        "would_block": _would_blocks(service, aid),
        "fleet": _fleet(service),
        "performance": _performance(service),
    }
    report["checks"] = _checks(report, status.degraded_reason if status.degraded else None)
    results = {c["result"] for c in report["checks"]}
    report["verdict"] = (
        "fail" if "fail" in results else ("pass with warnings" if "warn" in results else "pass")
    )
    return report


def reset_rehearsal(service: EnhancedMaintenanceModeService, actor: str) -> int:
    """Clear the would-block counters and samples of the current rehearsal; returns rows removed."""
    status = service.status
    if not (status.is_active and status.mode is MaintenanceMode.TEST and status.activation_id):
        from .errors import ConflictError

        raise ConflictError("no rehearsal (TEST maintenance) is running", status.version)
    aid = status.activation_id
    with contextlib.suppress(*REDIS_ERRORS):
        attempts.clear_would_block(service.redis, service.keys, aid)
    removed = attempts.delete_would_block_log(service.db, aid)
    service.record_event("rehearsal_reset", actor=actor, details={"samples_removed": removed})
    return removed


@register_renderer("test")
def render_markdown(body: dict[str, Any]) -> str:
    """Readable rehearsal report."""
    act, would, fleet, perf = (
        body["activation"],
        body["would_block"],
        body["fleet"],
        body["performance"],
    )
    channels = ", ".join(f"{k} {v}" for k, v in would["logged_by_channel"].items()) or "none"
    lines = [
        "# Maintenance rehearsal report",
        "",
        f"**Verdict: {body['verdict']}**",
        "",
        f"* Activation: {act['activation_id']} by {act['started_by']} — {act['reason']}",
        f"* Started: {act['started_at']}; ended: {act['ended_at'] or 'still running'}",
        f"* Would block: {', '.join(act['would_block']) or '-'}",
        "",
        "## Checks",
        "",
        *md_table(
            ["check", "result", "detail"],
            [[c["check"], c["result"].upper(), c["detail"]] for c in body["checks"]],
        ),
        "",
        "## What would have been blocked",
        "",
        *md_table(
            ["operation", "attempts"],
            sorted(would["counted_by_operation"].items(), key=lambda kv: -kv[1]) or [["-", 0]],
        ),
        "",
        f"By channel: {channels}; distinct users: {would['distinct_users']}.",
        "",
        "## Fleet",
        "",
        f"* Live nodes: {fleet.get('live_nodes', '?')} "
        f"({', '.join(f'{k} {v}' for k, v in fleet.get('nodes_by_kind', {}).items()) or 'none'})",
        f"* Running jobs that a real maintenance would let finish: {fleet.get('running_jobs', 0)}",
        "",
        "## Performance",
        "",
        f"* Hot-path check: {perf['hot_path_check_us']} us",
        f"* Redis round trip: {perf['redis_rtt_ms']} ms; SQL read: {perf['sql_read_ms']} ms",
    ]
    if act.get("propagation"):
        p = act["propagation"]
        lines.append(f"* Propagation: {p.get('applied')} node(s) in {p.get('waited_ms')} ms")
    return "\n".join(lines) + "\n"
