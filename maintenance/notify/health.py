"""Whether notifications get through: per endpoint counts, last error, and a degraded reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .endpoints import Endpoint
from .outbox import EndpointCounts


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _span(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class EndpointHealth:
    """One endpoint as status shows it (its label, never its URL)."""

    counts: EndpointCounts
    configured: bool
    format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        c = self.counts
        return {
            "endpoint": c.endpoint,
            "label": c.label,
            "format": self.format,
            "configured_here": self.configured,
            "pending": c.pending,
            "retrying": c.retrying,
            "failed": c.failed,
            "delivered": c.delivered,
            "failing_since": _iso(c.failing_since),
            "oldest_pending_at": _iso(c.oldest_pending_at),
            "last_delivered_at": _iso(c.last_delivered_at),
            "last_error": c.last_error,
            "last_error_at": _iso(c.last_error_at),
        }


@dataclass(frozen=True)
class NotifyHealth:
    """Every endpoint, and why notifications are degraded (if they are)."""

    configured: bool
    signed: bool
    endpoints: tuple[EndpointHealth, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def degraded(self) -> bool:
        """Deliveries failing longer than the threshold, given up, or stuck."""
        return bool(self.problems)

    @property
    def reason(self) -> str | None:
        """The problems in one line."""
        return "; ".join(self.problems) or None

    @property
    def pending(self) -> int:
        """Not delivered yet, over every endpoint."""
        return sum(e.counts.pending for e in self.endpoints)

    @property
    def failed(self) -> int:
        """Given up on, over every endpoint."""
        return sum(e.counts.failed for e in self.endpoints)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (admin status, ``maintenance notify status --json``)."""
        return {
            "configured": self.configured,
            "signed": self.signed,
            "pending": self.pending,
            "failed": self.failed,
            "degraded": self.degraded,
            "reason": self.reason,
            "endpoints": [e.to_dict() for e in self.endpoints],
        }


def assess(
    endpoints: Sequence[Endpoint],
    counts: Sequence[EndpointCounts],
    *,
    signed: bool,
    now: datetime,
    failing_after: float,
) -> NotifyHealth:
    """Join the configured endpoints with the outbox counts and name what is wrong."""
    by_id = {c.endpoint: c for c in counts}
    rows: list[EndpointHealth] = []
    for endpoint in endpoints:
        found = by_id.pop(endpoint.id, None) or EndpointCounts(endpoint.id, endpoint.label)
        rows.append(EndpointHealth(found, True, "slack" if endpoint.slack else "json"))
    rows.extend(EndpointHealth(c, False) for c in by_id.values())
    problems = [p for row in rows if (p := _problem(row, now, failing_after))]
    return NotifyHealth(
        configured=bool(endpoints), signed=signed, endpoints=tuple(rows), problems=tuple(problems)
    )


def _problem(row: EndpointHealth, now: datetime, failing_after: float) -> str | None:
    c = row.counts
    parts: list[str] = []
    if c.failed:
        parts.append(f"{c.failed} given up (`maintenance notify deliver --retry-failed`)")
    failing = (now - c.failing_since).total_seconds() if c.failing_since else 0.0
    waiting = (now - c.oldest_pending_at).total_seconds() if c.oldest_pending_at else 0.0
    if c.pending and c.failing_since is not None:
        if failing >= failing_after:
            parts.append(f"failing for {_span(failing)} ({c.pending} pending)")
    elif c.pending and waiting >= failing_after:
        why = "is a deliverer running?" if row.configured else "not configured on this node"
        parts.append(f"{c.pending} waiting for {_span(waiting)} ({why})")
    if not parts:
        return None
    error = f"; last error: {c.last_error}" if c.last_error else ""
    return f"webhook {c.label}: {', '.join(parts)}{error}"
