"""Input rules for every way in (service calls, CLI, HTTP, the admin panel): each limit
stated once, each field's check, errors that name the field, nothing lost.

Two grammars share the limits. What operators type (CLI, panel, Python) is read
leniently: ``NORMAL``, ``1h30m``, ``image-processing``. The JSON API reads the exact
grammar its OpenAPI document can state as a schema: lower-case values, a duration of
one whole number and unit, a ``wait`` no longer than a request should last.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from ..errors import ValidationError
from .modes import MaintenanceMode, OperationType, parse_mode, parse_operation

MAX_REASON = 500
MAX_ACTOR = 255
MAX_DURATION = 7 * 24 * 3600  # seconds
#: Seconds an HTTP caller may wait for every node to apply a change (a request must end).
MAX_WAIT = 30.0
#: Units of typed durations (``90s``, ``1h30m``, ``2d``, ``1w``) in seconds.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: The units of the JSON API's durations: one whole number and one of these.
EXACT_DURATION_UNITS = ("s", "m", "h", "d")
#: ``MAX_DURATION`` in words, for messages and help texts.
MAX_DURATION_TEXT = f"{MAX_DURATION // DURATION_UNITS['d']} days"
_DURATION_RE = re.compile(rf"(\d+(?:\.\d+)?)\s*([{''.join(DURATION_UNITS)}]?)")


def _upto(n: int) -> str:
    """A regular expression matching the decimal numbers 1..``n`` (no leading zeros)."""
    digits = str(n)
    width = len(digits)
    parts = [f"[1-9][0-9]{{0,{width - 2}}}"] if width > 1 else []
    for i, digit in enumerate(digits):
        low = 1 if i == 0 else 0
        high = int(digit) - (0 if i == width - 1 else 1)
        if low <= high:
            rest = width - i - 1
            span = str(low) if low == high else f"[{low}-{high}]"
            tail = "" if rest == 0 else "[0-9]" if rest == 1 else f"[0-9]{{{rest}}}"
            parts.append(digits[:i] + span + tail)
    return "|".join(parts)


#: The JSON API's text durations: one number and unit, never beyond ``MAX_DURATION``
#: (also the OpenAPI document's ``pattern``, so it uses no Python-only syntax).
EXACT_DURATION_PATTERN = (
    r"^\s*(?:"
    + "|".join(
        f"(?:{_upto(MAX_DURATION // DURATION_UNITS[unit])}){unit}" for unit in EXACT_DURATION_UNITS
    )
    + r")\s*$"
)
_EXACT_DURATION = re.compile(EXACT_DURATION_PATTERN)
_EXACT_DURATION_HELP = (
    f"duration must be seconds or one number and unit (90s, 30m, 2h, 1d), "
    f"at most {MAX_DURATION_TEXT}"
)


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
            seconds += float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
            pos = match.end()
    if seconds <= 0:
        raise ValidationError(f"{field} must be greater than zero", field=field)
    if seconds > MAX_DURATION:
        raise ValidationError(f"{field} must be at most {MAX_DURATION_TEXT}", field=field)
    return round(seconds)


def exact_duration(value: object) -> int | None:
    """The JSON API's duration: whole seconds ``1..MAX_DURATION`` or text like ``30m``."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_DURATION:
            raise ValidationError(f"duration must be 1..{MAX_DURATION} s", field="duration")
        return value
    if not isinstance(value, str) or not _EXACT_DURATION.fullmatch(value):
        raise ValidationError(_EXACT_DURATION_HELP, field="duration")
    return parse_duration(value)


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


def exact_length(text: object, field: str = "reason") -> None:
    """The JSON API counts the text as sent (its schema's ``maxLength``), not stripped."""
    if isinstance(text, str) and len(text) > MAX_REASON:
        raise ValidationError(f"{field} is longer than {MAX_REASON}", field=field)


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


def exact_mode(mode: object) -> MaintenanceMode:
    """The JSON API's mode: one of the values exactly (``None``: normal)."""
    if mode is None:
        return MaintenanceMode.NORMAL
    if isinstance(mode, str) and mode in _MODES:
        return _MODES[mode]
    known = ", ".join(_MODES)
    raise ValidationError(f"unknown maintenance mode {mode!r} (known: {known})", field="mode")


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


def exact_operations(ops: Iterable[object] | None) -> list[OperationType] | None:
    """The JSON API's operation types: a list of values, each spelled exactly."""
    if ops is None:
        return None
    out = []
    for op in ops:
        if not isinstance(op, str) or op not in _OPERATIONS:
            known = ", ".join(_OPERATIONS)
            raise ValidationError(
                f"unknown operation type {op!r} (known: {known})", field="blocked_operations"
            )
        out.append(_OPERATIONS[op])
    return out


def validate_wait(wait: object, *, maximum: float | None = None) -> float | None:
    """Seconds to wait for every node: ``>= 0``, and at most ``maximum`` when given."""
    if wait is None:
        return None
    if isinstance(wait, bool) or not isinstance(wait, int | float):
        raise ValidationError("wait must be a number of seconds", field="wait")
    if maximum is not None and not 0 <= wait <= maximum:
        raise ValidationError(f"wait must be 0..{maximum:g}", field="wait")
    if wait < 0:
        raise ValidationError("wait must be >= 0", field="wait")
    return float(wait)


def exact_version(version: object) -> int | None:
    """The JSON API's ``expected_version``: a status version, ``>= 0``."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValidationError("expected_version must be >= 0", field="expected_version")
    return version


_MODES = {m.value: m for m in MaintenanceMode}
_OPERATIONS = {op.value: op for op in OperationType}
