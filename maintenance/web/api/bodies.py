"""The JSON bodies and query limits of the API, field by field: ``guards.json_body``
checks the types, the OpenAPI document states the schemas. The enable request's
fields (and the reason, note, duration and wait shared with other bodies) come from
the core's one model (``domain.enable_request``)."""

from __future__ import annotations

from ...bypass_tokens import MAX_LINK_TTL, MIN_LINK_TTL
from ...domain.emergency_plan import DEFAULT_GRACE, DEFAULT_KILL_AFTER, MAX_GRACE, MAX_KILL_AFTER
from ...domain.enable_request import (
    JSON_FIELDS,
    NOTE,
    REASON,
    WAIT,
    JsonField,
    duration_field,
    nullable,
)

Body = dict[str, JsonField]

_NONE = type(None)
_BOOL = JsonField((bool,), {"type": "boolean"})


def _seconds(maximum: float, default: float) -> JsonField:
    return JsonField(
        (int, float, _NONE),
        nullable(
            {
                "type": "number",
                "minimum": 0,
                "maximum": maximum,
                "description": f"Default {default:g}.",
            }
        ),
    )


ENABLE: Body = JSON_FIELDS
DISABLE: Body = {
    "requeue": _BOOL,
    "reason": NOTE,
    "wait": WAIT,
    "expected_version": JSON_FIELDS["expected_version"],
}
INVALIDATE: Body = {"reason": NOTE, "wait": WAIT}
LOGIN_BLOCK: Body = {"blocked": _BOOL, "reason": NOTE}
BYPASS_LINK: Body = {
    "ttl": JsonField(
        (int, _NONE),
        nullable({"type": "integer", "minimum": MIN_LINK_TTL, "maximum": MAX_LINK_TTL}),
    )
}
EMERGENCY: Body = {
    "reason": REASON,
    "duration": duration_field("Expected length shown to users: seconds, or text like 30m, 2h."),
    "critical_admin_only": _BOOL,
    "grace_period": _seconds(MAX_GRACE, DEFAULT_GRACE),
    "kill_after": _seconds(MAX_KILL_AFTER, DEFAULT_KILL_AFTER),
    "wait": WAIT,
}
CRITICAL_ONLY: Body = {"wait": WAIT}
EMERGENCY_OFF: Body = {"requeue": _BOOL, "force": _BOOL, "reason": NOTE, "wait": WAIT}

#: Query parameters: events per history page, the largest event id, sessions sampled.
MAX_HISTORY = 1000
MAX_EVENT_ID = 2**62
MAX_SAMPLE = 100


def schema(body: Body, required: tuple[str, ...] = ()) -> dict[str, object]:
    """``body`` as a closed JSON Schema object."""
    out: dict[str, object] = {"type": "object", "additionalProperties": False}
    if required:
        out["required"] = list(required)
    out["properties"] = {name: field.schema for name, field in body.items()}
    return out
