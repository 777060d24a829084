"""Input rules for every way in (service calls, CLI, HTTP, the admin panel): each limit
stated once, each field's check, errors that name the field, nothing lost.

Two grammars share the limits. What operators type (CLI, panel, Python) is read
leniently: ``NORMAL``, ``1h30m``, ``image-processing``. The JSON API reads the exact
grammar its OpenAPI document can state as a schema: lower-case values, a duration of
one whole number and unit, a ``wait`` no longer than a request should last.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import timedelta

from ..errors import ValidationError
from .modes import MaintenanceMode, OperationType, parse_mode
from .operations import SEED_REGISTRY, OperationRegistry

MAX_REASON = 500
MAX_ACTOR = 255
MAX_DURATION = 7 * 24 * 3600  # seconds
#: Seconds an HTTP caller may wait for every node to apply a change (a request must end).
MAX_WAIT = 30.0
#: Seconds an operator (CLI, Python) may wait for every node or for a drain.
MAX_OPERATOR_WAIT = 3600.0
#: The largest whole number any entry point takes (a signed 64-bit SQL integer).
MAX_INT = 2**63 - 1
#: A JSON API body: at most this many bytes, objects/arrays nested at most this deep.
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 8
#: Units of typed durations (``90s``, ``1h30m``, ``2d``, ``1w``) in seconds.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: The units of the JSON API's durations: one whole number and one of these.
EXACT_DURATION_UNITS = ("s", "m", "h", "d")
#: ``MAX_DURATION`` in words, for messages and help texts.
MAX_DURATION_TEXT = f"{MAX_DURATION // DURATION_UNITS['d']} days"
# ASCII digits only (``\\d`` would take ``٣``): both grammars read the same numbers.
_DURATION_RE = re.compile(rf"([0-9]+(?:\.[0-9]+)?)\s*([{''.join(DURATION_UNITS)}]?)", re.ASCII)


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
        seconds = float(value) if abs(value) <= MAX_INT else math.inf
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
    if math.isnan(seconds) or seconds <= 0:
        raise ValidationError(f"{field} must be greater than zero", field=field)
    if seconds > MAX_DURATION:
        raise ValidationError(f"{field} must be at most {MAX_DURATION_TEXT}", field=field)
    if round(seconds) < 1:
        raise ValidationError(f"{field} must be at least 1 second", field=field)
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


#: Line breaks and tabs in a text field become one space (a one-line record).
_NEUTRALISED = "\t\n\r\x0b\x0c\x85\u2028\u2029"
_LINE_BREAKS = re.compile(f"[{_NEUTRALISED}]+")
#: Bidirectional controls: they reorder what a terminal or page shows, so they are refused.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _refused_char(ch: str) -> bool:
    """A control character (other than a neutralised line break) or a bidi control."""
    return (unicodedata.category(ch) == "Cc" and ch not in _NEUTRALISED) or ch in _BIDI_CONTROLS


def _invisible(ch: str) -> bool:
    """White space or a (Basic Multilingual Plane) format character such as U+200B."""
    return ch.isspace() or (ch <= "\uffff" and unicodedata.category(ch) == "Cf")


def _blank_char(ch: str) -> bool:
    """Not a character that makes text non-blank: invisible, or refused anyway."""
    return _invisible(ch) or _refused_char(ch)


def _char_class(test: Callable[[str], bool]) -> str:
    """The BMP characters passing ``test`` as a regular-expression class body of
    ``\\uXXXX`` ranges (the same in Python and ECMAScript, so OpenAPI can state it)."""
    parts, start, prev = [], None, None
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF or not test(chr(code)):
            continue
        if prev is not None and code == prev + 1:
            prev = code
            continue
        if start is not None:
            parts.append((start, prev))
        start = prev = code
    if start is not None:
        parts.append((start, prev))
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in parts)


# ``_char_class(_refused_char)`` and ``_char_class(_blank_char)``, written out so importing
# costs nothing (tests/core/test_validation.py checks they still match this Python).
_REFUSED_CLASS = (
    r"\u0000-\u0008\u000e-\u001f\u007f-\u0084\u0086-\u009f\u061c\u200e-\u200f"
    r"\u202a-\u202e\u2066-\u2069"
)
_BLANK_CLASS = (
    r"\u0000-\u0020\u007f-\u00a0\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891"
    r"\u08e2\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000"
    r"\ufeff\ufff9-\ufffb"
)
#: The text rules in words (OpenAPI descriptions, docs).
TEXT_RULES = (
    "One line: line breaks and tabs become a space; other control characters, "
    "bidirectional controls and lone surrogates are refused."
)
#: JSON Schema ``pattern`` of an optional text field: no refused character.
TEXT_PATTERN = f"^[^{_REFUSED_CLASS}]*$"
#: ... and of a required one: also at least one visible character.
VISIBLE_TEXT_PATTERN = f"^[^{_REFUSED_CLASS}]*[^{_BLANK_CLASS}][^{_REFUSED_CLASS}]*$"


def clean_text(value: object, field: str, *, maximum: int, required: bool) -> str | None:
    """One line of text for ``field``, the same on every entry point.

    Line breaks and tabs become one space; any other control character (NUL, ESC,
    DEL, C1), a bidirectional control, or a lone surrogate (what invalid UTF-8
    becomes in a command line) is refused. Text of only spaces and zero-width
    characters is blank: refused when ``required``, else ``None``. At most
    ``maximum`` characters once cleaned.
    """
    if value is None and not required:
        return None
    if not isinstance(value, str):
        problem = "is required" if required else "must be text"
        raise ValidationError(f"{field} {problem}", field=field)
    for ch in value:
        if "\ud800" <= ch <= "\udfff":
            raise ValidationError(
                f"{field} is not valid text (invalid UTF-8 or a lone surrogate)", field=field
            )
    text = _LINE_BREAKS.sub(" ", value).strip()
    bad = next((ch for ch in text if _refused_char(ch)), None)
    if bad is not None:
        raise ValidationError(
            f"{field} contains the control character U+{ord(bad):04X}; remove it", field=field
        )
    if all(_invisible(ch) for ch in text):
        if required:
            raise ValidationError(f"{field} is required", field=field)
        return None
    if len(text) > maximum:
        raise ValidationError(
            f"{field} is {len(text)} characters; at most {maximum} allowed", field=field
        )
    return text


def validate_reason(reason: object, field: str = "reason") -> str:
    """A reason: required, one line, at most ``MAX_REASON`` characters (``clean_text``)."""
    text = clean_text(reason, field, maximum=MAX_REASON, required=True)
    assert text is not None
    return text


def exact_length(text: object, field: str = "reason") -> None:
    """The JSON API counts the text as sent (its schema's ``maxLength``), not stripped."""
    if isinstance(text, str) and len(text) > MAX_REASON:
        raise ValidationError(f"{field} is longer than {MAX_REASON}", field=field)


def validate_note(note: object, field: str = "reason") -> str | None:
    """An optional note (e.g. why maintenance ended): blank is none (``clean_text``)."""
    return clean_text(note, field, maximum=MAX_REASON, required=False)


def validate_actor(actor: object, field: str = "enabled_by") -> str:
    """Who did it: a name of at most ``MAX_ACTOR`` characters (``clean_text``)."""
    if actor is None or (isinstance(actor, str) and not actor.strip()):
        raise ValidationError(f"{field} is required (who is doing this?)", field=field)
    text = clean_text(actor, field, maximum=MAX_ACTOR, required=True)
    assert text is not None
    return text


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


def validate_operations(
    ops: Iterable[object] | None, registry: OperationRegistry = SEED_REGISTRY
) -> list[OperationType] | None:
    """Operation types of ``registry`` (``None`` stays ``None``: use the mode's default)."""
    if ops is None:
        return None
    if isinstance(ops, str):
        ops = [part for part in ops.split(",") if part.strip()]
    out = []
    for op in ops:
        try:
            out.append(registry.parse(op))
        except ValueError as exc:
            raise ValidationError(str(exc), field="blocked_operations") from None
    return out


def exact_operations(
    ops: Iterable[object] | None, registry: OperationRegistry = SEED_REGISTRY
) -> list[OperationType] | None:
    """The JSON API's operation types: a list of ``registry``'s names, each spelled exactly."""
    if ops is None:
        return None
    out = []
    for op in ops:
        try:
            out.append(registry.exact(op))
        except ValueError as exc:
            raise ValidationError(str(exc), field="blocked_operations") from None
    return out


def validate_seconds(value: object, *, field: str, maximum: float) -> float:
    """A finite number of seconds ``0..maximum`` (``nan`` and ``inf`` are refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{field} must be a number of seconds", field=field)
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise ValidationError(f"{field} must be 0..{maximum:g}", field=field)
    seconds = float(value)
    if not math.isfinite(seconds) or not 0 <= seconds <= maximum:
        raise ValidationError(f"{field} must be 0..{maximum:g}", field=field)
    return seconds


def validate_wait(wait: object, *, maximum: float = MAX_OPERATOR_WAIT) -> float | None:
    """Seconds to wait for every node: finite, ``0..maximum`` (``None``: the default)."""
    if wait is None:
        return None
    return validate_seconds(wait, field="wait", maximum=maximum)


def validate_count(value: object, *, field: str, low: int = 0, high: int = MAX_INT) -> int:
    """A whole number ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{field} must be a whole number {low}..{high}", field=field)
    return value


def exact_version(version: object) -> int | None:
    """An ``expected_version`` (both grammars): a status version ``0..MAX_INT``."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_INT:
        raise ValidationError(
            f"expected_version must be a whole number 0..{MAX_INT}", field="expected_version"
        )
    return version


def check_json_tree(value: object) -> None:
    """Refuse what a JSON parser lets through but no field may hold: ``NaN``/``Infinity``
    and numbers beyond 64 bits, lone surrogates in strings or keys, nesting deeper than
    ``MAX_JSON_DEPTH``. The error names the top-level field it was found under."""
    stack: list[tuple[object, int, str | None]] = [(value, 1, None)]
    while stack:
        item, depth, top = stack.pop()
        if isinstance(item, dict | list) and depth > MAX_JSON_DEPTH:
            raise ValidationError(
                f"the body is nested deeper than {MAX_JSON_DEPTH} levels", field=top
            )
        if isinstance(item, dict):
            for key, child in item.items():
                _check_json_string(key, top or key)
                stack.append((child, depth + 1, top or key))
        elif isinstance(item, list):
            stack.extend((child, depth + 1, top) for child in item)
        elif isinstance(item, str):
            _check_json_string(item, top)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValidationError(f"{top or 'the body'}: numbers must be finite", field=top)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            raise ValidationError(f"{top or 'the body'}: number out of range", field=top)


def _check_json_string(text: str, top: str | None) -> None:
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise ValidationError(
            f"{top or 'the body'}: text with a lone surrogate (not Unicode)", field=top
        )


def json_depth(text: str) -> int:
    """How deeply ``text`` (JSON) nests objects and arrays, read without parsing it, so a
    body nested thousands deep is refused before a parser recurses into it."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


_MODES = {m.value: m for m in MaintenanceMode}
