"""Pure state transitions: the status and event an enable or a disable produces.

No I/O: the service checks the request (``enable_request``), loads the current
status, asks here for the next one, and writes it by compare-and-set. Tests can
drive every rule here with plain values.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..errors import ConflictError
from .enable_request import EnableRequest
from .history import MaintenanceEvent
from .modes import MaintenanceMode
from .status import MaintenanceStatus

#: ``extra`` keys that outlive an activation (cookie sessions issued before an
#: invalidation epoch stay invalid after maintenance ends).
CARRIED_EXTRA = ("session_epoch",)


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def check_expected_version(current: MaintenanceStatus, expected: int | None) -> None:
    """``ConflictError`` when the caller acted on a version that is no longer current."""
    if expected is not None and current.version != expected:
        raise ConflictError(
            f"maintenance state is at version {current.version}, not {expected}: "
            f"it was changed by {current.enabled_by or 'someone else'}; re-read and retry",
            current_version=current.version,
        )


def _carried(current: MaintenanceStatus) -> dict[str, Any]:
    return {k: current.extra[k] for k in CARRIED_EXTRA if k in current.extra}


def enabled(
    current: MaintenanceStatus,
    req: EnableRequest,
    now: datetime,
    new_id: Callable[[], str] = _new_id,
) -> tuple[MaintenanceStatus, MaintenanceEvent]:
    """The status and event of ``req`` applied to ``current``.

    Switching on starts an activation; changing an active maintenance keeps its
    activation, start time and (while it stays an emergency) its emergency id.
    """
    newly = not current.is_active
    activation_id = new_id() if newly else current.activation_id
    if not newly and current.mode is MaintenanceMode.EMERGENCY:
        emergency_id = current.emergency_id
    else:
        emergency_id = new_id() if req.mode is MaintenanceMode.EMERGENCY else None
    status = MaintenanceStatus(
        is_active=True,
        mode=req.mode,
        reason=req.reason,
        estimated_duration=req.seconds,
        started_at=now if newly else current.started_at,
        estimated_completion=now + timedelta(seconds=req.seconds) if req.seconds else None,
        enabled_by=req.actor,
        blocked_operations=req.blocked,
        invalidated_sessions=0 if newly else current.invalidated_sessions,
        test_mode=req.mode is MaintenanceMode.TEST,
        activation_id=activation_id,
        emergency_id=emergency_id,
        critical_admin_only=req.critical_admin_only,
        login_blocked=req.login_blocked,
        emergency_phase=None if newly else current.emergency_phase,
        extra={**_carried(current), **req.details},
    )
    event = MaintenanceEvent(
        kind="maintenance_enabled" if newly else "maintenance_updated",
        actor=req.actor,
        reason=req.reason,
        activation_id=activation_id,
        details={
            "mode": req.mode.value,
            "duration_seconds": req.seconds,
            "blocked_operations": [op.value for op in req.blocked],
            "previous_version": current.version,
            "previous_mode": current.mode.value if current.is_active else None,
            **req.details,
        },
    )
    return status, event


def disabled(
    current: MaintenanceStatus, actor: str, *, requeue: bool, reason: str | None = None
) -> tuple[MaintenanceStatus, MaintenanceEvent]:
    """The status and event of switching ``current`` off (``ConflictError`` if it is off)."""
    if not current.is_active:
        raise ConflictError("maintenance is not active", current_version=current.version)
    status = MaintenanceStatus(
        is_active=False,
        mode=current.mode,
        activation_id=current.activation_id,
        emergency_id=current.emergency_id,
        recovery_pending=requeue,
        extra=_carried(current),
    )
    event = MaintenanceEvent(
        kind="maintenance_disabled",
        actor=actor,
        reason=reason,
        activation_id=current.activation_id,
        details={
            "mode": current.mode.value,
            "requeue": requeue,
            "started_at": current.started_at.isoformat() if current.started_at else None,
            "previous_version": current.version,
        },
    )
    return status, event
