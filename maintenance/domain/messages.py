"""User-facing maintenance messages, per operation type, with reason and expected end."""

from __future__ import annotations

from datetime import datetime

from .modes import MaintenanceMode, OperationType
from .status import MaintenanceStatus, utcnow

Op = OperationType

#: What is unavailable, in the user's words, per operation type.
OPERATION_MESSAGES: dict[OperationType, str] = {
    Op.CAPTION_GENERATION: (
        "Caption generation is paused during maintenance. Captions already being "
        "generated will finish and be saved."
    ),
    Op.JOB_CREATION: (
        "New jobs cannot be created or changed during maintenance. Jobs that were "
        "already running will finish."
    ),
    Op.PLATFORM_OPERATIONS: (
        "Platform switching, connection tests and credential updates are unavailable "
        "during maintenance."
    ),
    Op.BATCH_OPERATIONS: "Batch processing and bulk review are paused during maintenance.",
    Op.USER_DATA_MODIFICATION: (
        "Profile, settings and password changes are unavailable during maintenance. "
        "Your data is safe and unchanged."
    ),
    Op.IMAGE_PROCESSING: ("Image upload, optimisation and analysis are paused during maintenance."),
    Op.ADMIN_OPERATIONS: "Administrative actions are restricted during maintenance.",
    Op.AUTHENTICATION: "Signing in is limited to administrators during maintenance.",
    Op.READ_OPERATIONS: "This page is unavailable during maintenance.",
    Op.STATUS_CHECK: "",
    Op.UNKNOWN: "This action is unavailable during maintenance.",
}

_HEADLINES = {
    MaintenanceMode.NORMAL: "The service is undergoing scheduled maintenance.",
    MaintenanceMode.EMERGENCY: "The service is undergoing emergency maintenance.",
    MaintenanceMode.TEST: "A maintenance rehearsal is running; nothing is blocked.",
}


def _when(status: MaintenanceStatus, now: datetime) -> str:
    end = status.estimated_completion
    if end is None:
        return "We will be back as soon as possible."
    if now > end:
        return "Maintenance is taking longer than expected; we will be back as soon as possible."
    minutes = max(1, round((end - now).total_seconds() / 60))
    span = f"{minutes} minute{'s' if minutes != 1 else ''}"
    if minutes >= 120:
        hours = round(minutes / 60)
        span = f"{hours} hours"
    return f"Expected to finish at {end.strftime('%H:%M UTC on %d %b %Y')} (in about {span})."


def build_message(
    status: MaintenanceStatus,
    operation: OperationType | None = None,
    now: datetime | None = None,
) -> str:
    """The full user-facing text for ``operation`` (or in general) under ``status``."""
    if not status.is_active:
        return "The service is operating normally."
    now = now or utcnow()
    parts = [_HEADLINES[status.mode]]
    if operation is not None and OPERATION_MESSAGES.get(operation):
        parts.append(OPERATION_MESSAGES[operation])
    if status.reason:
        reason = status.reason.rstrip(".")
        parts.append(f"Reason: {reason}.")
    parts.append(_when(status, now))
    return " ".join(parts)
