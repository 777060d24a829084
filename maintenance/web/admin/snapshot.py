"""Everything the monitoring dashboard shows, in one JSON-ready dict: status, jobs and the
drain, blocked attempts (totals and per minute), sessions, nodes, history and reports.

Each section is read on its own; one unreachable source turns into that section's
``error`` and leaves the rest of the dashboard working.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ... import attempts
from ...domain.modes import MaintenanceMode
from ...emergency import controller_for
from ...emergency.deactivation import check_deactivation
from ...errors import ConflictError
from ...reports import list_reports
from ..payloads import admin_status, jsonable_attempt
from .history import HistoryQuery, history_view
from .jobs import jobs_view
from .preflight import SOURCE_ERRORS

if TYPE_CHECKING:
    from ...domain.status import MaintenanceStatus
    from ...service import EnhancedMaintenanceModeService
    from .config import AdminConfig

log = logging.getLogger("maintenance.web.admin")


def _section(name: str, read: Callable[[], Any]) -> Any:
    try:
        return read()
    except SOURCE_ERRORS as exc:
        log.warning("admin dashboard: %s unavailable: %s", name, exc)
        return {"error": f"{name} unavailable: {str(exc).splitlines()[0] if str(exc) else exc}"}


def nodes_view(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Nodes of the status view, flagged ``lagging`` when behind the current version."""
    now = time.time()
    rows = []
    for node in status.get("nodes") or []:
        applied = int(node.get("applied_version") or 0)
        rows.append(
            {
                "node_id": node.get("node_id"),
                "kind": node.get("kind"),
                "host": node.get("host"),
                "applied_version": applied,
                "lagging": applied < int(status["version"]),
                "seen_seconds_ago": round(max(0.0, now - float(node.get("last_seen") or now)), 1),
            }
        )
    return sorted(rows, key=lambda n: (not n["lagging"], str(n["kind"]), str(n["node_id"])))


def attempts_view(
    service: EnhancedMaintenanceModeService, status: dict[str, Any], minutes: int
) -> dict[str, Any]:
    """Blocked (and would-be-blocked) attempts of this activation, per-minute rates, newest."""
    minute = int(time.time() // 60)
    recent = attempts.logged_attempts(service, status.get("activation_id"), limit=10)
    return {
        "by_operation": status.get("blocked_attempts") or {},
        "would_block": status.get("would_block_attempts") or {},
        "minutes": minutes,
        "first_minute": minute - minutes + 1,
        "rates": attempts.rates(service, minutes=minutes),
        "recent": [jsonable_attempt(row) for row in recent],
    }


def emergency_view(
    service: EnhancedMaintenanceModeService, live: MaintenanceStatus
) -> dict[str, Any] | None:
    """The emergency console: phase, plan (its SIGTERM and SIGKILL times), outcome counts,
    each worker's ladder, running jobs, and what stands in the way of a lift now (the
    registry and termination checks; the lift itself runs every check again)."""
    if not (live.is_active and live.mode is MaintenanceMode.EMERGENCY):
        return None
    progress = controller_for(service).emergency_progress().to_dict()
    try:
        check: dict[str, Any] | None = check_deactivation(service).to_dict()
    except ConflictError:  # lifted between the two reads
        check = None
    return {**progress, "check": check, "critical_admin_only": live.critical_admin_only}


def build_snapshot(
    service: EnhancedMaintenanceModeService,
    config: AdminConfig,
    sessions: Any = None,
    status: MaintenanceStatus | None = None,
    history: HistoryQuery | None = None,
) -> dict[str, Any]:
    """The dashboard's data (admins only: it names users, nodes and workers); ``status``
    is the ``get_maintenance_status()`` already read, if any; ``history`` the page of
    the history to include (the first page of every kind if None)."""
    view = admin_status(service, status)
    live = service.status
    out: dict[str, Any] = {"status": view, "generated_at": time.time()}
    out["jobs"] = _section("jobs", lambda: jobs_view(service, live))
    out["attempts"] = _section(
        "blocked attempts", lambda: attempts_view(service, view, config.chart_minutes)
    )
    out["emergency"] = _section("emergency", lambda: emergency_view(service, live))
    out["nodes"] = nodes_view(view)
    out["sessions"] = (
        _section("sessions", lambda: sessions.get_active_non_admin_sessions(sample=10).to_dict())
        if sessions is not None
        else None
    )
    out["history"] = _section(
        "history", lambda: history_view(service, config, history or HistoryQuery())
    )
    out["reports"] = _section("reports", lambda: list_reports(service, limit=config.reports_limit))
    return out
