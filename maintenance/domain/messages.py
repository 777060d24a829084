"""User-facing maintenance messages, per operation type, with reason and expected end."""

from __future__ import annotations

from datetime import datetime

from .modes import MaintenanceMode, OperationType
from .operations import SEED_REGISTRY, OperationRegistry
from .status import MaintenanceStatus, utcnow

#: What is unavailable, in the user's words, per operation type of the seed vocabulary
#: (an app's own: ``OperationRegistry.message``).
OPERATION_MESSAGES: dict[OperationType, str] = {
    spec.name: spec.message for spec in SEED_REGISTRY.specs()
}

_HEADLINES = {
    MaintenanceMode.NORMAL: "The service is undergoing scheduled maintenance.",
    MaintenanceMode.EMERGENCY: "The service is undergoing emergency maintenance.",
    MaintenanceMode.TEST: "A maintenance rehearsal is running; nothing is blocked.",
}


def _span(minutes: int) -> str:
    if minutes >= 120:
        return f"{round(minutes / 60)} hours"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def expected_end(status: MaintenanceStatus, now: datetime | None = None) -> str | None:
    """``15:30 UTC on 03 Dec 2026 (in about 20 minutes)``; None when no end is set."""
    end = status.estimated_completion
    if end is None:
        return None
    now = now or utcnow()
    when = end.strftime("%H:%M UTC on %d %b %Y")
    if now > end:
        return f"{when} (overdue: taking longer than expected)"
    return f"{when} (in about {_span(max(1, round((end - now).total_seconds() / 60)))})"


def lead_message(
    status: MaintenanceStatus,
    operation: OperationType | None = None,
    registry: OperationRegistry = SEED_REGISTRY,
) -> str:
    """What is going on and what is unavailable -- without the reason and the end
    (a page that shows those on their own lines does not repeat them)."""
    if not status.is_active:
        return "The service is operating normally."
    text = registry.message(operation)
    return f"{_HEADLINES[status.mode]} {text}" if text else _HEADLINES[status.mode]


def _when(status: MaintenanceStatus, now: datetime) -> str:
    end = status.estimated_completion
    if end is None:
        return "We will be back as soon as possible."
    if now > end:
        return "Maintenance is taking longer than expected; we will be back as soon as possible."
    span = _span(max(1, round((end - now).total_seconds() / 60)))
    return f"Expected to finish at {end.strftime('%H:%M UTC on %d %b %Y')} (in about {span})."


def build_message(
    status: MaintenanceStatus,
    operation: OperationType | None = None,
    now: datetime | None = None,
    registry: OperationRegistry = SEED_REGISTRY,
) -> str:
    """The full user-facing text for ``operation`` (or in general) under ``status``,
    worded by ``registry`` (the app's vocabulary)."""
    if not status.is_active:
        return "The service is operating normally."
    now = now or utcnow()
    parts = [lead_message(status, operation, registry)]
    if status.reason:
        reason = status.reason.rstrip(".")
        parts.append(f"Reason: {reason}.")
    parts.append(_when(status, now))
    return " ".join(parts)
