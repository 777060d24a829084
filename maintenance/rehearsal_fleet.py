"""Which nodes of the fleet could not have refused during a rehearsal, and why.

Sources, each with its limits:

* the node registry (``nodes.py``): every process that built a service heartbeats its
  kind, its hooks (``declare_hook``) and the status version it applied -- a web node
  without the request gate, a worker without its gate, a node still on a version older
  than the rehearsal (stale);
* the rehearsal's propagation measurement: nodes that did not ack it in time and are
  not heard from since (unreachable);
* what hooked workers saw (``rehearsal_log``): messages of a would-be-blocked type that
  no publish gate judged, by publisher ``origin``;
* probes registered by the layers above (``register_probe``): the Celery side asks
  the broker which workers answer, and names those that never registered (no hooks);
* ``Settings.expected_nodes``: processes that cannot speak for themselves (a web
  process without the middleware never registers) show up only as a shortfall
  against the inventory the operator declared.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import rehearsal_log
from .nodes import NodeInfo
from .redisconn import REDIS_ERRORS

if TYPE_CHECKING:
    from .service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.rehearsal")

#: Hooks a node of each kind needs to refuse anything (others need none of their own).
REQUIRED_HOOKS = {"web": ("http",), "worker": ("worker",), "beat": ("publish",)}
#: ``probe(service, would_block) -> findings`` (each made by ``finding``).
Probe = Callable[["EnhancedMaintenanceModeService", frozenset[str]], list[dict[str, Any]]]
_probes: list[Probe] = []
_ORIGIN = re.compile(r"^gen(?P<pid>\d+)@(?P<host>.+)$")


def register_probe(probe: Probe) -> Probe:
    """Add a fleet probe the rehearsal report runs (idempotent)."""
    if probe not in _probes:
        _probes.append(probe)
    return probe


def finding(
    node: str,
    kind: str,
    problem: str,
    detail: str,
    blocked_traffic: int | None = None,
    *,
    fails: bool = True,
) -> dict[str, Any]:
    """One node that could not refuse; ``fails`` -- whether it fails the verdict (a node
    known to have seen no blocked-type traffic only warns)."""
    return {
        "node": node,
        "kind": kind,
        "problem": problem,
        "detail": detail,
        "blocked_traffic": blocked_traffic,
        "fails": fails,
    }


def _node_rows(
    nodes: dict[str, NodeInfo], fleet_log: rehearsal_log.FleetLog
) -> list[dict[str, Any]]:
    rows = []
    for node_id in sorted(set(nodes) | set(fleet_log.seen)):
        info = nodes.get(node_id)
        seen = fleet_log.seen.get(node_id, {})
        rows.append(
            {
                "node": node_id,
                "kind": info.kind if info else node_id.split("@", 1)[0],
                "live": info is not None,
                "hooks": list(info.info.get("hooks", [])) if info else [],
                "hostname": info.info.get("hostname") if info else None,
                "applied_version": info.applied_version if info else None,
                "would_block_seen": {ch: sum(ops.values()) for ch, ops in seen.items()},
            }
        )
    return rows


def _registry_findings(
    rows: list[dict[str, Any]], version: int, lagging: list[str]
) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if not row["live"]:
            continue
        label = row["hostname"] or row["node"]
        missing = [h for h in REQUIRED_HOOKS.get(row["kind"], ()) if h not in row["hooks"]]
        if missing:
            out.append(
                finding(
                    label,
                    row["kind"],
                    "missing hook",
                    f"registered as {row['kind']} without the {', '.join(missing)} gate "
                    f"(hooks: {', '.join(row['hooks']) or 'none'})",
                )
            )
        if version and (row["applied_version"] or 0) < version:
            out.append(
                finding(
                    label,
                    row["kind"],
                    "stale version",
                    f"acked status v{row['applied_version']}, the rehearsal is v{version}",
                )
            )
    live = {row["node"] for row in rows if row["live"]}
    for node_id in lagging:
        if node_id not in live:
            out.append(
                finding(
                    node_id,
                    node_id.split("@", 1)[0],
                    "unreachable",
                    "did not ack the rehearsal when it started and is not heard from now",
                )
            )
    return out


def _publisher_node(origin: str, nodes: dict[str, NodeInfo]) -> str | None:
    """The registered node of the process ``gen<pid>@<host>`` names, if there is one."""
    match = _ORIGIN.match(origin)
    if match:
        pid, host = int(match["pid"]), match["host"]
        for node in nodes.values():
            if node.info.get("pid") == pid and f"@{host}:" in node.node_id:
                return node.node_id
    return None


def _publisher_label(origin: str, nodes: dict[str, NodeInfo]) -> str:
    """``gen<pid>@<host>``, with the registered node of that process if there is one."""
    node = _publisher_node(origin, nodes)
    return f"{origin} ({node})" if node else origin


def _hostname(node_id: str, nodes: dict[str, NodeInfo]) -> str:
    node = nodes.get(node_id)
    return str(node.info.get("hostname") or node_id) if node else node_id


def _unjudged_findings(
    fleet_log: rehearsal_log.FleetLog, nodes: dict[str, NodeInfo]
) -> list[dict[str, Any]]:
    by_origin: dict[tuple[str, str], list[rehearsal_log.Unjudged]] = {}
    for item in fleet_log.unjudged:
        problem = item.problem
        if problem == rehearsal_log.NO_HOOKS and _publisher_node(item.origin, nodes):
            # Unstamped, from a process that has the hooks: an app there has no gate.
            problem = rehearsal_log.NOT_JUDGED
        by_origin.setdefault((item.origin, problem), []).append(item)
    out = []
    for (origin, problem), items in sorted(by_origin.items()):
        total = sum(i.messages for i in items)
        ops = Counter[str]()
        for i in items:
            ops[i.operation] += i.messages
        workers = sorted({_hostname(i.seen_by, nodes) for i in items})
        why = (
            "no maintenance hooks in the publishing process"
            if problem == rehearsal_log.NO_HOOKS
            else "published without the publish gate's judgement (no gate on that app, "
            "or a status older than the rehearsal)"
        )
        out.append(
            finding(
                _publisher_label(origin, nodes),
                "publisher",
                "missing hook" if problem == rehearsal_log.NO_HOOKS else "unjudged publishes",
                f"{total} message(s) of a blocked type "
                f"({', '.join(f'{op} {n}' for op, n in sorted(ops.items()))}) "
                f"reached {', '.join(workers)}: {why}",
                blocked_traffic=total,
            )
        )
    return out


def _inventory_findings(
    rows: list[dict[str, Any]], expected: tuple[tuple[str, int], ...]
) -> list[dict[str, Any]]:
    hooked = Counter(
        row["kind"]
        for row in rows
        if row["live"] and all(h in row["hooks"] for h in REQUIRED_HOOKS.get(row["kind"], ()))
    )
    out = []
    for kind, want in expected:
        have = hooked.get(kind, 0)
        if have < want:
            out.append(
                finding(
                    f"{want - have} {kind} node(s) of the inventory",
                    kind,
                    "not registered",
                    f"expected {want} {kind} node(s) with their hooks, {have} registered: "
                    "processes without the hooks (a web process without the middleware "
                    "never registers), or down",
                )
            )
    return out


def _probe_findings(
    service: EnhancedMaintenanceModeService, would_block: frozenset[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    findings: list[dict[str, Any]] = []
    errors: list[str] = []
    for probe in list(_probes):
        try:
            findings.extend(probe(service, would_block))
        except Exception as exc:  # a probe that fails leaves a warning, not a crash
            log.warning("rehearsal probe %r failed: %s", probe, exc)
            errors.append(f"{getattr(probe, '__name__', probe)}: {exc}")
    return findings, errors


def examine(
    service: EnhancedMaintenanceModeService,
    activation_id: str,
    *,
    version: int,
    lagging: list[str],
    would_block: frozenset[str],
    probe: bool = True,
) -> dict[str, Any]:
    """The fleet section of a rehearsal report: every node, and those that could not refuse."""
    try:
        nodes = service.nodes()
        fleet_log = rehearsal_log.read(service.redis, service.keys, activation_id)
    except REDIS_ERRORS as exc:
        return {"error": str(exc), "nodes": [], "cannot_refuse": [], "timings": {}}
    rows = _node_rows(nodes, fleet_log)
    cannot = _registry_findings(rows, version, lagging)
    cannot += _unjudged_findings(fleet_log, nodes)
    cannot += _inventory_findings(rows, service.settings.expected_nodes)
    probed, probe_errors = _probe_findings(service, would_block) if probe else ([], [])
    cannot += probed
    return {
        "nodes": rows,
        "nodes_by_kind": dict(Counter(row["kind"] for row in rows if row["live"])),
        "cannot_refuse": cannot,
        "probes_run": len(_probes) if probe else 0,
        "probe_errors": probe_errors,
        "timings": fleet_log.timings,
    }


def clear(service: EnhancedMaintenanceModeService, activation_id: str) -> None:
    """Forget what the nodes recorded about a rehearsal (reset)."""
    with contextlib.suppress(*REDIS_ERRORS):
        rehearsal_log.clear(service.redis, service.keys, activation_id)
