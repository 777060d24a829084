"""Input validation for every way in (service calls, CLI, HTTP): clear errors, nothing lost."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from ..errors import ValidationError
from .modes import MaintenanceMode, OperationType, parse_mode, parse_operation

MAX_REASON = 500
MAX_ACTOR = 255
MAX_DURATION = 7 * 24 * 3600  # seconds
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")


def parse_duration(
    value: str | int | float | timedelta | None, *, field: str = "duration"
) -> int | None:
    """Seconds in ``value``: ``90``, ``"90s"``, ``"30m"``, ``"1h30m"``, ``"2d"`` or a timedelta.

    A bare number is seconds. ``None`` means "unknown" and stays ``None``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{field} must be a duration, got {value!r}", field=field)
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        if not text:
            raise ValidationError(f"{field} is empty", field=field)
        pos, seconds = 0, 0.0
        while pos < len(text):
            match = _DURATION_RE.match(text, pos)
            if not match or match.end() == pos:
                raise ValidationError(
                    f"{field} {value!r} is not a duration (use e.g. 90s, 30m, 1h30m, 2d)",
                    field=field,
                )
            seconds += float(match.group(1)) * _UNITS[match.group(2) or "s"]
            pos = match.end()
    if seconds <= 0:
        raise ValidationError(f"{field} must be greater than zero", field=field)
    if seconds > MAX_DURATION:
        raise ValidationError(f"{field} must be at most 7 days", field=field)
    return round(seconds)


def validate_reason(reason: object) -> str:
    """A non-empty reason of at most 500 characters, stripped."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("reason is required", field="reason")
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise ValidationError(
            f"reason is {len(reason)} characters; at most {MAX_REASON} allowed", field="reason"
        )
    return reason


def validate_note(note: object, field: str = "reason") -> str | None:
    """An optional note (e.g. why maintenance ended): blank is none, at most 500 characters."""
    if note is None:
        return None
    if not isinstance(note, str):
        raise ValidationError(f"{field} must be text", field=field)
    note = note.strip()
    if len(note) > MAX_REASON:
        raise ValidationError(
            f"{field} is {len(note)} characters; at most {MAX_REASON} allowed", field=field
        )
    return note or None


def validate_actor(actor: object, field: str = "enabled_by") -> str:
    """Who did it: a non-empty name of at most 255 characters."""
    if not isinstance(actor, str) or not actor.strip():
        raise ValidationError(f"{field} is required (who is doing this?)", field=field)
    actor = actor.strip()
    if len(actor) > MAX_ACTOR:
        raise ValidationError(f"{field} is longer than {MAX_ACTOR} characters", field=field)
    return actor


def validate_mode(mode: object) -> MaintenanceMode:
    """A known ``MaintenanceMode``."""
    try:
        return parse_mode(mode)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValidationError(str(exc), field="mode") from None


def validate_operations(ops: Iterable[object] | None) -> list[OperationType] | None:
    """Known operation types (``None`` stays ``None``: use the mode's default)."""
    if ops is None:
        return None
    if isinstance(ops, str):
        ops = [part for part in ops.split(",") if part.strip()]
    out = []
    for op in ops:
        try:
            out.append(parse_operation(op))  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValidationError(str(exc), field="blocked_operations") from None
    return out
