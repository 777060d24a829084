"""The message headers the maintenance hooks stamp on a publish and read back.

Written by the publish gate (``signals.stamping``) and by the recovery requeue;
read by the worker-side gate, job tracking and the emergency. Every key starts
with ``maintenance_``; a task sees them on ``self.request``.
"""

from __future__ import annotations

from typing import Any

from maintenance import MaintenanceStatus
from maintenance.rehearsal_log import NO_HOOKS, NOT_JUDGED

OPERATION = "maintenance_operation"
VERSION = "maintenance_version"
PUBLISHER = "maintenance_publisher"
CONTINUATION = "maintenance_continuation"
BYPASS = "maintenance_bypass"
BYPASS_CRITICAL = "maintenance_bypass_critical"
REQUEUED_FROM = "maintenance_requeued_from"
REQUEUE_ATTEMPT = "maintenance_requeue_attempt"
#: Publish time, integer nanoseconds since the epoch (an int: formatting a float for
#: every publish's headers costs measurably more, ``bench/publish_gate.py``).
PUBLISHED_NS = "maintenance_published_ns"
#: Publish time in float unix seconds, as earlier versions stamped it (still read).
PUBLISHED_AT = "maintenance_published_at"


def published_time(headers: Any) -> float | None:
    """A message's publish time in unix seconds, from either stamp; None if unstamped."""
    ns = headers.get(PUBLISHED_NS)
    if ns is not None:
        try:
            return int(ns) / 1e9
        except (TypeError, ValueError):
            return None
    legacy = headers.get(PUBLISHED_AT)
    if legacy is None:
        return None
    try:
        return float(legacy)
    except (TypeError, ValueError):
        return None


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


def unjudged_publish(
    headers: Any, status: MaintenanceStatus, grace: float
) -> tuple[str, str | None] | None:
    """Why a message without the gate's version stamp reached a worker during ``status``
    (a rehearsal), with the publisher's ``origin`` header (``gen<pid>@<host>``):

    * no stamp at all -- the publishing app has no publish gate (``NO_HOOKS``; the
      report says "no hooks" unless ``origin`` names a registered, hooked process);
    * only the publish time, taken more than ``grace`` seconds (the fenced wait: by then
      every live node applied the rehearsal, or is reported lagging) after the rehearsal
      began -- its app has no publish gate, or its process had not applied the
      rehearsal (``NOT_JUDGED``);
    * published before that (backlog, or racing the rehearsal's propagation) -- None.
    """
    origin = headers.get("origin")
    if headers.get(PUBLISHED_NS) is None and headers.get(PUBLISHED_AT) is None:
        return NO_HOOKS, origin
    published = published_time(headers)
    started = status.started_at
    if published is None or started is None or published > started.timestamp() + grace:
        return NOT_JUDGED, origin
    return None
