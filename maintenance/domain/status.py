"""``MaintenanceStatus``: the immutable snapshot every process reads, and its JSON form."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from .modes import MaintenanceMode, OperationType

_DATETIME_FIELDS = frozenset({"started_at", "estimated_completion", "updated_at"})


def utcnow() -> datetime:
    """Timezone-aware current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class MaintenanceStatus:
    """One versioned snapshot of the maintenance state plus live counters.

    ``version`` increases by one on every change of the system of record; a
    process applies a snapshot only if its version is newer than what it has.
    The live counters (``active_jobs_count``, ``deferred_jobs_count``, ...) are
    filled in by ``get_maintenance_status`` and are not part of the versioned state.
    """

    is_active: bool = False
    mode: MaintenanceMode = MaintenanceMode.NORMAL
    reason: str | None = None
    estimated_duration: int | None = None  # seconds
    started_at: datetime | None = None
    estimated_completion: datetime | None = None
    enabled_by: str | None = None
    blocked_operations: tuple[OperationType, ...] = ()
    active_jobs_count: int = 0
    invalidated_sessions: int = 0
    test_mode: bool = False
    version: int = 0
    # Beyond the seed fields.
    activation_id: str | None = None
    emergency_id: str | None = None
    recovery_pending: bool = False
    critical_admin_only: bool = False
    login_blocked: bool = False
    emergency_phase: str | None = None
    deferred_jobs_count: int = 0
    #: Stopped jobs not safe to rerun, left for an operator (rerun or discard).
    jobs_needing_action_count: int = 0
    overdue: bool = False
    degraded: bool = False
    degraded_reason: str | None = None
    updated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=True, hash=False)

    # -- derived -------------------------------------------------------------------
    def retry_after(self, now: datetime | None = None) -> int | None:
        """Whole seconds until the estimated end, or ``None`` when unknown or past."""
        if not self.is_active or self.estimated_completion is None:
            return None
        remaining = (self.estimated_completion - (now or utcnow())).total_seconds()
        if remaining <= 0:
            return None
        return math.ceil(remaining)

    def is_overdue(self, now: datetime | None = None) -> bool:
        """True when maintenance is still on after its estimated end."""
        return bool(
            self.is_active
            and self.estimated_completion is not None
            and (now or utcnow()) > self.estimated_completion
        )

    def with_changes(self, **changes: Any) -> MaintenanceStatus:
        """A copy with ``changes`` applied (the snapshot itself never changes)."""
        return replace(self, **changes)

    # -- JSON ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict(to_dict(s)) == s`` for every status."""
        data = asdict(self)
        data["mode"] = self.mode.value
        data["blocked_operations"] = [op.value for op in self.blocked_operations]
        for name in _DATETIME_FIELDS:
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        return data

    def to_json(self) -> str:
        """Compact JSON text of ``to_dict``."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MaintenanceStatus:
        """Inverse of ``to_dict``; unknown keys are ignored (newer writers)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "mode" in values:
            values["mode"] = MaintenanceMode(values["mode"])
        if "blocked_operations" in values:
            values["blocked_operations"] = tuple(
                OperationType(op) for op in values["blocked_operations"]
            )
        for name in _DATETIME_FIELDS & values.keys():
            raw = values[name]
            values[name] = datetime.fromisoformat(raw) if raw is not None else None
        if "extra" in values and values["extra"] is None:
            values["extra"] = {}
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> MaintenanceStatus:
        """Parse the output of ``to_json``."""
        return cls.from_dict(json.loads(text))


#: The state of a system that has never been in maintenance.
INITIAL_STATUS = MaintenanceStatus()
