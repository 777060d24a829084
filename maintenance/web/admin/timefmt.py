"""Short human renderings of durations and instants for the panel (UTC, minute precision)."""

from __future__ import annotations

from datetime import UTC, datetime

_UNITS = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))


def human_seconds(seconds: float | int | None) -> str:
    """``5400`` -> ``1h 30m`` (two largest units; ``-`` for None)."""
    if seconds is None:
        return "-"
    left = max(0, round(seconds))
    if left == 0:
        return "0s"
    first = next(i for i, (size, _unit) in enumerate(_UNITS) if left >= size)
    size, unit = _UNITS[first]
    parts = [f"{left // size}{unit}"]
    if first + 1 < len(_UNITS):
        small, small_unit = _UNITS[first + 1]
        if (left % size) // small:
            parts.append(f"{(left % size) // small}{small_unit}")
    return " ".join(parts)


def iso_minutes(value: datetime | None) -> str:
    """``2024-05-01 12:30 UTC`` (``-`` for None)."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso_seconds(value: datetime | None) -> str:
    """``2024-05-01 12:30:05 UTC``, as the panel's scripts write times (``-`` for None)."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
