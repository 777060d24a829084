"""Which event-log entries are announced, and as what notification type (pure)."""

from __future__ import annotations

from collections.abc import Callable

from ..domain.history import MaintenanceEvent

MAINTENANCE_ENABLED = "maintenance.enabled"
MAINTENANCE_CHANGED = "maintenance.changed"
MAINTENANCE_DISABLED = "maintenance.disabled"
MAINTENANCE_DRAINED = "maintenance.drained"
MAINTENANCE_OVERDUE = "maintenance.overdue"
EMERGENCY_DECLARED = "emergency.declared"
EMERGENCY_LIFTED = "emergency.lifted"
JOB_TERMINATED = "job.terminated"
RECOVERY_FINISHED = "recovery.finished"

#: Every notification type with its headline.
TITLES: dict[str, str] = {
    MAINTENANCE_ENABLED: "Maintenance enabled",
    MAINTENANCE_CHANGED: "Maintenance changed",
    MAINTENANCE_DISABLED: "Maintenance disabled",
    MAINTENANCE_DRAINED: "Maintenance drained",
    MAINTENANCE_OVERDUE: "Maintenance overdue",
    EMERGENCY_DECLARED: "Emergency declared",
    EMERGENCY_LIFTED: "Emergency lifted",
    JOB_TERMINATED: "Job terminated",
    RECOVERY_FINISHED: "Recovery finished",
}

_EMERGENCY = "emergency"


def _enabled(event: MaintenanceEvent) -> str:
    becomes_emergency = event.details.get("mode") == _EMERGENCY
    was_emergency = event.details.get("previous_mode") == _EMERGENCY
    if becomes_emergency and not was_emergency:
        return EMERGENCY_DECLARED
    return MAINTENANCE_ENABLED if event.kind == "maintenance_enabled" else MAINTENANCE_CHANGED


def _disabled(event: MaintenanceEvent) -> str:
    return EMERGENCY_LIFTED if event.details.get("mode") == _EMERGENCY else MAINTENANCE_DISABLED


#: Event-log kind -> the notification type it makes (some depend on the details).
_RULES: dict[str, Callable[[MaintenanceEvent], str]] = {
    "maintenance_enabled": _enabled,
    "maintenance_updated": _enabled,
    "maintenance_disabled": _disabled,
    "maintenance_overdue": lambda _e: MAINTENANCE_OVERDUE,
    "drained": lambda _e: MAINTENANCE_DRAINED,
    "job_terminated": lambda _e: JOB_TERMINATED,
    "recovery_completed": lambda _e: RECOVERY_FINISHED,
}

#: Event-log kinds that are announced.
ANNOUNCED_KINDS: frozenset[str] = frozenset(_RULES)


def notification_type(event: MaintenanceEvent) -> str | None:
    """The notification ``event`` makes, or None when it is not announced.

    An emergency is declared by the state change that makes the mode EMERGENCY
    and lifted by the one that switches an emergency off: those two are the
    durable records (the ``emergency_*`` log entries around them are not written
    in the same transaction).
    """
    rule = _RULES.get(event.kind)
    return rule(event) if rule is not None else None
