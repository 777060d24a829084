"""TEST-mode rehearsals: what would have been blocked, whether the fleet followed, a verdict.

``build_test_report`` inspects the current (or a given) TEST activation;
``disable_maintenance`` stores one automatically when a rehearsal ends;
``reset_rehearsal`` clears the counters so a rehearsal can start over.

The fleet section comes from the nodes themselves (``rehearsal_fleet``): what each
web process, worker and publisher would have refused, which nodes could not have
refused (missing hook, stale version, unreachable, not registered) -- any of them
fails the verdict -- and the decision timings each node's own gates recorded.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from . import attempts, rehearsal_fleet
from .domain.modes import MaintenanceMode
from .domain.status import utcnow
from .job_registry import JobRegistry
from .redisconn import REDIS_ERRORS
from .reports import md_table, register_renderer

if TYPE_CHECKING:
    from .service import EnhancedMaintenanceModeService

#: A gate's median decision during a rehearsal, counting a would-be refusal included
#: (one pipelined Redis write): above it the performance check warns.
GATE_BUDGET_US = 1000.0


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
        "version": (propagation.details.get("version") if propagation else None)
        or (status.version if status.activation_id == activation_id else 0),
    }


def _would_blocks(service: EnhancedMaintenanceModeService, activation_id: str) -> dict[str, Any]:
    logged = attempts.would_block_log(service.db, activation_id)
    counted: dict[str, int] = {}
    with contextlib.suppress(*REDIS_ERRORS):
        service.attempts.flush_counts()
        counted = attempts.would_block_counters(
            service.redis, service.keys, activation_id, service.operations.names()
        )
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


def _fleet(
    service: EnhancedMaintenanceModeService, activation: dict[str, Any], *, probe: bool
) -> dict[str, Any]:
    prop = activation["propagation"] or {}
    fleet = rehearsal_fleet.examine(
        service,
        activation["activation_id"] or "none",
        version=int(activation["version"] or 0),
        lagging=list(prop.get("lagging", [])),
        would_block=frozenset(activation["would_block"]),
        probe=probe and bool(activation["activation_id"]),
    )
    try:
        running = list(JobRegistry(service.redis, service.keys).all().values())
    except REDIS_ERRORS:
        running = []
    by_op = Counter(job.operation for job in running)
    fleet["live_nodes"] = sum(1 for row in fleet["nodes"] if row["live"])
    fleet["running_jobs"] = sum(by_op.values())
    fleet["running_jobs_by_operation"] = dict(by_op)
    return fleet


def _performance(service: EnhancedMaintenanceModeService, fleet: dict[str, Any]) -> dict[str, Any]:
    kinds = {row["node"]: row["kind"] for row in fleet["nodes"]}
    gates = [
        {"node": node, "kind": kinds.get(node, node.split("@", 1)[0]), "gate": gate, **stats}
        for node, channels in sorted(fleet.pop("timings", {}).items())
        for gate, stats in sorted(channels.items())
    ]
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
        "gates": gates,
        "gate_budget_us": GATE_BUDGET_US,
        "redis_rtt_ms": round(redis_ms, 3),
        "sql_read_ms": round(sql_ms, 3),
    }


def _check(name: str, outcome: str, detail: str) -> dict[str, str]:
    return {"check": name, "result": outcome, "detail": detail}


def _seen_by_channel(fleet: dict[str, Any], channel: str) -> tuple[int, int]:
    """(attempts, nodes) of would-be-blocked ``channel`` traffic the nodes recorded."""
    counts = [row["would_block_seen"].get(channel, 0) for row in fleet["nodes"]]
    return sum(counts), sum(1 for n in counts if n)


def _checks(report: dict[str, Any], degraded: str | None) -> list[dict[str, str]]:
    prop = report["activation"]["propagation"] or {}
    fleet = report["fleet"]
    cannot = fleet.get("cannot_refuse", [])
    failing = [c for c in cannot if c["fails"]]
    http, http_nodes = _seen_by_channel(fleet, "http")
    published, publishers = _seen_by_channel(fleet, "celery")
    queued, _ = _seen_by_channel(fleet, "worker")
    workers = [
        row
        for row in fleet["nodes"]
        if row["live"] and row["kind"] == "worker" and "worker" in row["hooks"]
    ]
    gates = report["performance"]["gates"]
    slow = [g for g in gates if g["p50_us"] > GATE_BUDGET_US]
    return [
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
            "every node could refuse",
            "fail" if failing else ("warn" if cannot or fleet.get("error") else "pass"),
            "; ".join(f"{c['node']}: {c['problem']}" for c in cannot)
            or fleet.get("error")
            or f"{fleet.get('live_nodes', 0)} live node(s), each with its hooks and the "
            "rehearsal applied",
        ),
        _check(
            "web gates recorded would-be-blocked requests",
            "pass" if http else "warn",
            f"{http} request(s) on {http_nodes} web node(s)"
            if http
            else "no blocked-kind request was seen during the rehearsal",
        ),
        _check(
            "publish gates recorded would-be-blocked jobs",
            "pass" if published else "warn",
            f"{published} publish(es) on {publishers} node(s); {queued} unjudged message(s) "
            "caught by worker gates",
        ),
        _check(
            "workers follow the control plane",
            "pass" if workers else "warn",
            f"{len(workers)} worker node(s) live with the worker gate; broker census: "
            + (
                "; ".join(fleet.get("probe_errors", []))
                or ("ran" if fleet.get("probes_run") else "none (no Celery app in this process)")
            ),
        ),
        _check(
            "gate decisions within budget",
            "warn" if slow or not gates else "pass",
            (
                "; ".join(f"{g['node']} {g['gate']}: p50 {g['p50_us']} us" for g in slow)
                + f" (budget {GATE_BUDGET_US:.0f} us)"
            )
            if slow
            else (
                f"{sum(g['decisions'] for g in gates)} decision(s) timed on "
                f"{len({g['node'] for g in gates})} node(s), every median within "
                f"{GATE_BUDGET_US:.0f} us"
                if gates
                else "no gate decision was timed during the rehearsal"
            ),
        ),
    ]


def build_test_report(
    service: EnhancedMaintenanceModeService,
    activation_id: str | None = None,
    *,
    probe: bool = True,
) -> dict[str, Any]:
    """A validation report for a TEST activation (the current one by default).

    ``probe=False`` skips the fleet probes (the broker census waits for workers to answer).
    """
    activation = _activation(service, activation_id)
    aid = activation["activation_id"] or "none"
    status = service.get_maintenance_status()
    service.attempts.flush_counts()  # this process's counts, per node too, before reading
    fleet = _fleet(service, activation, probe=probe)
    report: dict[str, Any] = {
        "generated_at": utcnow().isoformat(),
        "activation": activation,
        "would_block": _would_blocks(service, aid),
        "fleet": fleet,
        "performance": _performance(service, fleet),
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
        attempts.clear_would_block(service.redis, service.keys, aid, service.operations.names())
    rehearsal_fleet.clear(service, aid)
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
    cannot = fleet.get("cannot_refuse", [])
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
        "## Nodes that could not refuse",
        "",
        *(
            md_table(
                ["node", "kind", "problem", "detail"],
                [[c["node"], c["kind"], c["problem"], c["detail"]] for c in cannot],
            )
            if cannot
            else ["None found."]
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
        *md_table(
            ["node", "kind", "hooks", "applied", "would-be-blocked seen"],
            [
                [
                    row["node"] + ("" if row["live"] else " (gone)"),
                    row["kind"],
                    ", ".join(row["hooks"]) or "-",
                    "-" if row["applied_version"] is None else f"v{row['applied_version']}",
                    ", ".join(f"{k} {v}" for k, v in sorted(row["would_block_seen"].items()))
                    or "-",
                ]
                for row in fleet.get("nodes", [])
            ]
            or [["-", "-", "-", "-", "-"]],
        ),
        "",
        f"* Running jobs that a real maintenance would let finish: {fleet.get('running_jobs', 0)}",
        "",
        "## Performance (each node's own gates)",
        "",
        *md_table(
            ["node", "gate", "decisions", "mean us", "p50 us", "p99 us", "max us"],
            [
                [
                    g["node"],
                    g["gate"],
                    g["decisions"],
                    g["mean_us"],
                    g["p50_us"],
                    g["p99_us"],
                    g["max_us"],
                ]
                for g in perf["gates"]
            ]
            or [["-", "-", 0, "-", "-", "-", "-"]],
        ),
        "",
        f"* Redis round trip: {perf['redis_rtt_ms']} ms; SQL read: {perf['sql_read_ms']} ms",
    ]
    if act.get("propagation"):
        p = act["propagation"]
        lines.append(f"* Propagation: {p.get('applied')} node(s) in {p.get('waited_ms')} ms")
    return "\n".join(lines) + "\n"
