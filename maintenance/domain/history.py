"""``MaintenanceEvent``: one entry of the append-only event log (who, what, why, when)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

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
