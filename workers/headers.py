"""The message headers the maintenance hooks stamp on a publish and read back.

Written by the ``before_task_publish`` receiver (``signals.stamping``) and by
the recovery requeue; read by the worker-side gate, job tracking and the
emergency. Every key starts with ``maintenance_``; a task sees them on
``self.request``.
"""

from __future__ import annotations

from typing import Any

OPERATION = "maintenance_operation"
VERSION = "maintenance_version"
PUBLISHER = "maintenance_publisher"
CONTINUATION = "maintenance_continuation"
BYPASS = "maintenance_bypass"
BYPASS_CRITICAL = "maintenance_bypass_critical"
REQUEUED_FROM = "maintenance_requeued_from"
REQUEUE_ATTEMPT = "maintenance_requeue_attempt"
PUBLISHED_AT = "maintenance_published_at"


def bypass_user(headers: Any) -> dict[str, Any] | None:
    """The admin a message was published for under a bypass (from its stamps), if any."""
    bypass = headers.get(BYPASS)
    if not bypass:
        return None
    return {
        "is_admin": True,
        "is_critical_admin": bool(headers.get(BYPASS_CRITICAL)),
        "username": bypass,
    }
