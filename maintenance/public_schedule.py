"""What the public may know beyond the current status: upcoming windows and past maintenance.

Read from SQL (``maintenance_windows``, the event log) and kept per process: a
node reloads it when the status version moves or ``refresh`` seconds pass (a new
window does not change the status version), one request at a time, so serving
it costs no SQL per request. Nothing here names a person or an internal id:
windows and past maintenance carry only times, mode and their user-facing reason.
Rehearsals (TEST mode) are invisible to users and are left out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from .domain.modes import MaintenanceMode
from .domain.status import MaintenanceStatus, utcnow
from .errors import MaintenanceError
from .store import schema
from .store.database import Database
from .store.windows import SCHEDULED, WindowStore

log = logging.getLogger("maintenance.public")

_HIDDEN_MODE = MaintenanceMode.TEST.value
MAX_UPCOMING = 20
_HISTORY_KINDS = ("maintenance_enabled", "maintenance_updated", "maintenance_disabled")


@dataclass(frozen=True)
class UpcomingWindow:
    """A scheduled window users should know about."""

    start_at: datetime
    end_at: datetime
    mode: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the status API's ``upcoming_windows``)."""
        return {
            "start_at": self.start_at.isoformat(),
            "end_at": self.end_at.isoformat(),
            "mode": self.mode,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PastMaintenance:
    """One maintenance that happened (or is still on: ``ended_at`` is None)."""

    started_at: datetime
    ended_at: datetime | None
    mode: str
    reason: str | None


@dataclass(frozen=True)
class PublicSchedule:
    """Upcoming windows (soonest first) and past maintenance (newest first)."""

    upcoming: tuple[UpcomingWindow, ...] = ()
    history: tuple[PastMaintenance, ...] = ()
    available: bool = True

    @property
    def stamp(self) -> str:
        """Changes whenever what users see of the schedule changes (ETag material)."""
        text = repr((self.upcoming, self.history, self.available))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def upcoming_windows(
    db: Database, now: datetime, limit: int = MAX_UPCOMING
) -> list[UpcomingWindow]:
    """Scheduled windows that have not ended, soonest first (rehearsals left out)."""
    ahead = [
        w for w in WindowStore(db).list((SCHEDULED,)) if w.end_at > now and w.mode != _HIDDEN_MODE
    ]
    return [UpcomingWindow(w.start_at, w.end_at, w.mode, w.reason) for w in ahead[:limit]]


def past_maintenance(db: Database, limit: int = 10) -> list[PastMaintenance]:
    """The newest ``limit`` maintenance periods, from the event log (rehearsals left out)."""
    t = schema.events
    query = (
        select(t.c.at, t.c.kind, t.c.reason, t.c.activation_id, t.c.details_json)
        .where(t.c.kind.in_(_HISTORY_KINDS), t.c.activation_id.is_not(None))
        .order_by(t.c.id.desc())
        .limit(limit * 8)
    )
    with db.connect() as conn:
        rows = conn.execute(query).all()
    periods: dict[str, dict[str, Any]] = {}
    for row in reversed(rows):  # oldest first: later entries refine earlier ones
        period = periods.setdefault(row.activation_id, {"ended_at": None})
        mode = _mode_of(row.details_json)
        if row.kind == "maintenance_disabled":
            period["ended_at"] = row.at
            continue
        period.setdefault("started_at", row.at)
        period["reason"] = row.reason
        if mode:
            period["mode"] = mode
    found = [
        PastMaintenance(p["started_at"], p["ended_at"], p.get("mode", "normal"), p.get("reason"))
        for p in periods.values()
        if "started_at" in p and p.get("mode") != _HIDDEN_MODE
    ]
    found.sort(key=lambda p: p.started_at, reverse=True)
    return found[:limit]


def _mode_of(details_json: str | None) -> str | None:
    try:
        mode = json.loads(details_json or "{}").get("mode")
    except (ValueError, AttributeError):
        return None
    return str(mode) if mode else None


def load(db: Database, now: datetime | None = None, history: int = 10) -> PublicSchedule:
    """Both lists, read now."""
    now = now or utcnow()
    return PublicSchedule(tuple(upcoming_windows(db, now)), tuple(past_maintenance(db, history)))


def announcement(
    schedule: PublicSchedule, now: datetime, lead_time: float
) -> UpcomingWindow | None:
    """The next window starting within ``lead_time`` seconds (None: nothing to announce)."""
    if lead_time <= 0:
        return None
    horizon = now + timedelta(seconds=lead_time)
    for window in schedule.upcoming:
        if window.start_at > now and window.start_at <= horizon:
            return window
    return None


class PublicScheduleCache:
    """This process's copy of the public schedule, reloaded per status version or every
    ``refresh`` seconds; while one request reloads it, the others get the copy they had."""

    def __init__(self, db: Database, refresh: float = 30.0, history: int = 10) -> None:
        self.db = db
        self.refresh = refresh
        self.history = history
        self._schedule: PublicSchedule | None = None
        self._version = -1
        self._loaded_at = float(
            "-inf"
        )  # stale whatever the clock reads (monotonic may start near 0)
        self._lock = threading.Lock()

    def get(self, status: MaintenanceStatus) -> PublicSchedule:
        """The schedule as of ``status`` (SQL only when stale, by one caller at a time)."""
        current = self._schedule
        fresh = time.monotonic() - self._loaded_at < self.refresh
        if current is not None and fresh and self._version == status.version:
            return current
        if not self._lock.acquire(blocking=current is None):
            return current  # type: ignore[return-value]  # blocking when None
        try:
            if self._schedule is current:  # nobody reloaded it meanwhile
                self._reload(status.version)
            return self._schedule or PublicSchedule(available=False)
        finally:
            self._lock.release()

    def _reload(self, version: int) -> None:
        try:
            self._schedule = load(self.db, history=self.history)
        except (MaintenanceError, SQLAlchemyError) as exc:
            # Keep what we had (or say it is unavailable); try again after ``refresh``.
            log.warning("public schedule not reloaded: %s", exc)
            if self._schedule is None:
                self._schedule = PublicSchedule(available=False)
        self._version = version
        self._loaded_at = time.monotonic()

    def invalidate(self) -> None:
        """Reload on the next ``get`` (a window was added or cancelled in this process)."""
        self._loaded_at = float(
            "-inf"
        )  # stale whatever the clock reads (monotonic may start near 0)
