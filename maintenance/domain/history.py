"""``MaintenanceEvent``: one entry of the append-only event log (who, what, why, when)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..errors import ValidationError
from .status import utcnow


@dataclass(frozen=True)
class MaintenanceEvent:
    """One entry of the event log."""

    kind: str
    actor: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    activation_id: str | None = None
    version: int | None = None
    at: datetime = field(default_factory=utcnow)
    id: int | None = None

    def with_version(self, version: int) -> MaintenanceEvent:
        """A copy stamped with the state version it produced."""
        return replace(self, version=version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "actor": self.actor,
            "reason": self.reason,
            "version": self.version,
            "activation_id": self.activation_id,
            "details": self.details,
        }


@dataclass(frozen=True)
class EventPage:
    """One page of the event log, newest first: ``events`` from ``offset`` on, at most
    ``limit`` of them, and ``total``, how many entries match the filters (not the page)."""

    events: tuple[MaintenanceEvent, ...]
    total: int
    offset: int
    limit: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "events": [e.to_dict() for e in self.events],
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
        }


#: Every kind of event the control plane and its Celery side record (``history --kind``
#: and ``GET /history?kind=`` accept these; tests/structure keeps the list complete).
EVENT_KINDS: tuple[str, ...] = (
    "maintenance_enabled",
    "maintenance_updated",
    "maintenance_disabled",
    "maintenance_overdue",
    "propagation",
    "login_blocked",
    "login_allowed",
    "sessions_invalidated",
    "critical_admin_only_enabled",
    "bypass_link_created",
    "bypass_link_redeemed",
    "emergency_activated",
    "emergency_phase",
    "emergency_termination_started",
    "emergency_unterminable",
    "emergency_deactivation_refused",
    "emergency_deactivated",
    "job_terminated",
    "jobs_requeued",
    "recovery_completed",
    "drained",
    "window_scheduled",
    "window_cancelled",
    "window_missed",
    "window_skipped",
    "rehearsal_reset",
    "test_report_created",
    "emergency_report_created",
    "consistency_check",
    "store_adopted",
    "data_modification_refused",
)


def validate_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """``kinds`` if every one is a known event kind; else ``ValidationError`` naming it."""
    for kind in kinds:
        if kind not in EVENT_KINDS:
            raise ValidationError(
                f"unknown event kind {kind!r} (known: {', '.join(EVENT_KINDS)})", field="kind"
            )
    return kinds
