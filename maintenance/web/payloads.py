"""JSON views of the status: what any user may see, and the fuller admin view.

The public view never names administrators or internals (no ``enabled_by``,
node ids, degraded reasons, activation ids); it is computed from the local
cache only and memoised per status version and second, so the status
endpoint costs no network round trip.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import attempts
from ..domain.messages import build_message
from ..domain.modes import OperationType
from ..domain.operations import NEVER_BLOCKED
from ..domain.policy import Decision, decide
from ..domain.status import MaintenanceStatus, utcnow
from ..errors import MaintenanceError

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def public_status(
    status: MaintenanceStatus, upcoming: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What a user needs to know: is it on, why, what is blocked, until when (and, when
    given, the upcoming scheduled windows)."""
    now = utcnow()
    active = status.is_active
    blocked = (
        [] if (not active or status.test_mode) else [op.value for op in status.blocked_operations]
    )
    return {
        "view": "public",
        "is_active": active,
        "mode": status.mode.value if active else None,
        "test_mode": bool(active and status.test_mode),
        "reason": status.reason if active else None,
        "message": build_message(status, None, now),
        "started_at": _iso(status.started_at) if active else None,
        "estimated_duration": status.estimated_duration if active else None,
        "estimated_completion": _iso(status.estimated_completion) if active else None,
        "retry_after": status.retry_after(now),
        "overdue": status.is_overdue(now),
        "blocked_operations": blocked,
        "login_blocked": bool(status.login_blocked and not status.test_mode),
        "version": status.version,
        **({} if upcoming is None else {"upcoming_windows": upcoming}),
    }


_ADMIN_FIELDS = (
    "enabled_by",
    "activation_id",
    "emergency_id",
    "critical_admin_only",
    "emergency_phase",
    "active_jobs_count",
    "deferred_jobs_count",
    "jobs_needing_action_count",
    "invalidated_sessions",
    "recovery_pending",
    "degraded",
    "degraded_reason",
)


def admin_status(
    service: EnhancedMaintenanceModeService, status: MaintenanceStatus | None = None
) -> dict[str, Any]:
    """The public view plus who, live counters, health, nodes and blocked attempts
    (of ``status``, already read with ``get_maintenance_status()``, else read now)."""
    if status is None:
        status = service.get_maintenance_status()
    out = public_status(status)
    out["view"] = "admin"
    out["mode"] = status.mode.value
    # Admins see the rehearsal's would-be-blocked set too.
    out["blocked_operations"] = [op.value for op in status.blocked_operations]
    out.update({name: getattr(status, name) for name in _ADMIN_FIELDS})
    out["updated_at"] = _iso(status.updated_at)
    out["blocked_attempts"] = dict(status.extra.get("blocked_attempts") or {})
    out["would_block_attempts"] = dict(status.extra.get("would_block_attempts") or {})
    try:
        nodes = [n.to_dict() for n in service.nodes().values()]
    except Exception:  # nodes are a diagnostic; a Redis hiccup must not fail the view
        nodes = []
    out["nodes"] = nodes
    out["notifications"] = notifications_view(service)
    return out


def notifications_view(service: EnhancedMaintenanceModeService) -> dict[str, Any]:
    """Webhook delivery health (``maintenance notify status``); SQL trouble is reported."""
    try:
        return service.notifier.health().to_dict()
    except MaintenanceError as exc:
        return {"configured": service.notifier.configured, "error": str(exc)}


class PublicStatusCache:
    """Serialised public status, rebuilt when the version changes or a second passes
    (``retry_after`` and the message count down)."""

    def __init__(self) -> None:
        self._key: tuple[int, int, Any] | None = None
        self._body = b""
        self._lock = threading.Lock()

    def get(self, status: MaintenanceStatus, upcoming: list[dict[str, Any]] | None = None) -> bytes:
        """The JSON bytes of ``public_status(status, upcoming)`` (cheap on a hit)."""
        key = (status.version, int(time.time()), upcoming)
        if key == self._key:
            return self._body
        body = json.dumps(public_status(status, upcoming), separators=(",", ":")).encode()
        with self._lock:
            self._key, self._body = key, body
        return body


def blocked_operations_view(
    service: EnhancedMaintenanceModeService, *, admin: bool
) -> dict[str, Any]:
    """Blocked operation types with their messages; admins also get attempt counts,
    per-minute rates and the newest logged attempts."""
    status = service.status
    ops = service.get_blocked_operations()
    out: dict[str, Any] = {
        "is_active": status.is_active,
        "mode": status.mode.value if status.is_active else None,
        "blocked_operations": [
            {
                "operation": op.value,
                "label": service.operations.label(op),
                "message": service.operations.message(op),
            }
            for op in ops
        ],
        "operation_types": operation_types_view(service),
    }
    if admin:
        live = service.get_maintenance_status()
        out["would_block"] = (
            [op.value for op in status.blocked_operations] if status.test_mode else []
        )
        out["attempts"] = dict(live.extra.get("blocked_attempts") or {})
        out["would_block_attempts"] = dict(live.extra.get("would_block_attempts") or {})
        out["rates_per_minute"] = attempts.rates(service, minutes=10)
        recent = attempts.logged_attempts(service, status.activation_id, limit=20)
        out["recent"] = [jsonable_attempt(row) for row in recent]
    return out


def operation_types_view(service: EnhancedMaintenanceModeService) -> list[dict[str, Any]]:
    """The app's vocabulary: every operation type with its label, message and the modes
    that block it by default."""
    return [
        {
            "operation": spec.name.value,
            "label": spec.label,
            "message": spec.message,
            "blocked_by_default_in": sorted(m.value for m in spec.blocked_in),
            "never_blocked": spec.name in NEVER_BLOCKED,
        }
        for spec in service.operations.specs()
    ]


def jsonable_attempt(row: dict[str, Any]) -> dict[str, Any]:
    """One logged blocked attempt as the API and the dashboard show it."""
    return {
        "at": row.get("at"),
        "user": row.get("user"),
        "operation": row.get("operation"),
        "endpoint": row.get("endpoint"),
        "method": row.get("method"),
        "mode": row.get("mode"),
        "channel": row.get("channel"),
        "would_block": bool(row.get("would_block")),
    }


def message_view(
    service: EnhancedMaintenanceModeService, operation: OperationType | None
) -> dict[str, Any]:
    """The user-facing message for ``operation`` and whether a regular user is refused it."""
    status = service.status
    blocked = operation is not None and decide(status, operation) is Decision.BLOCK
    return {
        "operation": operation.value if operation is not None else None,
        "is_active": status.is_active,
        "blocked": blocked,
        "message": service.get_maintenance_message(operation),
        "retry_after": status.retry_after(),
    }
