"""What a notification says: the generic JSON envelope and the Slack body (pure).

The envelope is rendered once, when the event is written, and stored in the
outbox: every retry sends the same bytes (only the signature's timestamp moves).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..domain.history import MaintenanceEvent
from . import kinds

PAYLOAD_VERSION = 1


def _who(event: MaintenanceEvent) -> str:
    return event.actor or "someone"


def _note(text: str | None) -> str:
    return f": {text.rstrip('.')}" if text else ""


def _length(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds <= 0:
        return ""
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"; expected to take {int(seconds)} s"
    if minutes < 120:
        return f"; expected to take {minutes} min"
    return f"; expected to take {round(minutes / 60)} h"


def _enabled(e: MaintenanceEvent) -> str:
    mode = e.details.get("mode", "normal")
    duration = _length(e.details.get("duration_seconds"))
    return f"{_who(e)} enabled {mode} maintenance{_note(e.reason)}{duration}."


def _changed(e: MaintenanceEvent) -> str:
    mode = e.details.get("mode", "normal")
    duration = _length(e.details.get("duration_seconds"))
    return f"{_who(e)} changed the maintenance (now {mode}){_note(e.reason)}{duration}."


def _disabled(e: MaintenanceEvent) -> str:
    requeue = "; held-back jobs will be requeued" if e.details.get("requeue") else ""
    mode = e.details.get("mode", "normal")
    return f"{_who(e)} ended the {mode} maintenance{_note(e.reason)}{requeue}."


def _declared(e: MaintenanceEvent) -> str:
    facts = e.details.get("emergency")
    plan = facts.get("plan") if isinstance(facts, dict) else None
    timing = ""
    if isinstance(plan, dict) and "grace" in plan:
        timing = (
            f"; running jobs get {plan['grace']:g} s to stop, "
            f"then SIGTERM, then SIGKILL after {plan.get('kill_after', 0):g} s"
        )
    return f"{_who(e)} declared an emergency{_note(e.reason)}{timing}."


def _lifted(e: MaintenanceEvent) -> str:
    requeue = "; stopped jobs will be requeued" if e.details.get("requeue") else ""
    return f"{_who(e)} lifted the emergency{_note(e.reason)}{requeue}."


def _terminated(e: MaintenanceEvent) -> str:
    d = e.details
    job = f"{d.get('task', 'a job')}[{d.get('task_id', '?')}]"
    where = f" on {d['worker']}" if d.get("worker") else ""
    rerun = (
        "it will run again after the emergency"
        if d.get("rerun_safe")
        else "it will not run again by itself (review it with `maintenance jobs`)"
    )
    return f"{job}{where} was stopped by the emergency ({d.get('outcome', 'terminated')}); {rerun}."


def _drained(_e: MaintenanceEvent) -> str:
    return "No job of a blocked type is running any more: the maintenance work can start."


def _overdue(e: MaintenanceEvent) -> str:
    late = e.details.get("seconds_late")
    past = f"{int(late)} s past" if isinstance(late, int | float) else "past"
    return f"Maintenance is {past} its expected end and still on."


def _recovered(_e: MaintenanceEvent) -> str:
    return "Held-back jobs were republished: recovery after maintenance is complete."


_TEXT: dict[str, Callable[[MaintenanceEvent], str]] = {
    kinds.MAINTENANCE_ENABLED: _enabled,
    kinds.MAINTENANCE_CHANGED: _changed,
    kinds.MAINTENANCE_DISABLED: _disabled,
    kinds.MAINTENANCE_DRAINED: _drained,
    kinds.MAINTENANCE_OVERDUE: _overdue,
    kinds.EMERGENCY_DECLARED: _declared,
    kinds.EMERGENCY_LIFTED: _lifted,
    kinds.JOB_TERMINATED: _terminated,
    kinds.RECOVERY_FINISHED: _recovered,
}


def summary(notification_type: str, event: MaintenanceEvent) -> str:
    """One sentence for people (chat, pager)."""
    return _TEXT[notification_type](event)


def envelope(
    key: str, notification_type: str, event: MaintenanceEvent, event_id: int | None
) -> dict[str, Any]:
    """The generic JSON body: ``id`` (the idempotency key), ``type``, ``title``, ``text``,
    ``occurred_at`` and the event-log entry it announces."""
    return {
        "version": PAYLOAD_VERSION,
        "id": key,
        "type": notification_type,
        "title": kinds.TITLES[notification_type],
        "text": summary(notification_type, event),
        "occurred_at": event.at.isoformat(),
        "event": {**event.to_dict(), "id": event_id},
    }


def encode(body: dict[str, Any]) -> bytes:
    """The bytes sent (and signed)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(envelope_: dict[str, Any]) -> dict[str, Any]:
    """The Slack incoming-webhook body for a stored envelope (``text`` is the fallback)."""
    title, text = str(envelope_["title"]), str(envelope_["text"])
    headline = f"*{_slack_escape(title)}*\n{_slack_escape(text)}"
    when = str(envelope_.get("occurred_at", ""))
    with contextlib.suppress(ValueError):
        when = datetime.fromisoformat(when).strftime("%Y-%m-%d %H:%M:%S UTC")
    event_id = (envelope_.get("event") or {}).get("id")
    context = f"{envelope_['type']} · {when} · event {event_id}"
    return {
        "text": f"{title}: {text}",
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": headline},
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(context)}]},
        ],
    }
