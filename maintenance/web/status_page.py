"""The public status page and the schedule the banner and status API announce windows from.

The page (default ``/status``) is HTML without JavaScript, needs no login and is
cacheable (``Cache-Control: public, max-age`` and an ``ETag``): the current state
and its user-facing message, upcoming scheduled windows and recent maintenance.
It is served from this node's status cache and its ``PublicScheduleCache``: no
SQL per request. Settings (``app.config.setdefault``):

``MAINTENANCE_STATUS_PAGE``          its path (``/status``; None or ``""`` turns the page off)
``MAINTENANCE_STATUS_PAGE_TITLE``    its heading (``Service status``)
``MAINTENANCE_STATUS_PAGE_MAX_AGE``  seconds browsers and proxies may reuse it (30)
``MAINTENANCE_SCHEDULE_REFRESH``     seconds a node keeps the window and history lists (30)
"""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, render_template, request, url_for

from ..domain.modes import MaintenanceMode
from ..domain.status import MaintenanceStatus, utcnow
from ..public_schedule import (
    PastMaintenance,
    PublicSchedule,
    PublicScheduleCache,
    UpcomingWindow,
    announcement,
)
from .payloads import public_status

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService

EXTENSION = "maintenance_public"
BLUEPRINT = "maintenance_status_page"
DEFAULTS: dict[str, Any] = {
    "MAINTENANCE_STATUS_PAGE": "/status",
    "MAINTENANCE_STATUS_PAGE_TITLE": "Service status",
    "MAINTENANCE_STATUS_PAGE_MAX_AGE": 30,
    "MAINTENANCE_SCHEDULE_REFRESH": 30.0,
}

_STATES = {
    None: ("operational", "All systems operational"),
    MaintenanceMode.NORMAL: ("maintenance", "Scheduled maintenance in progress"),
    MaintenanceMode.EMERGENCY: ("emergency", "Emergency maintenance in progress"),
}


def _day(value: datetime) -> str:
    return value.strftime("%a %d %b %Y")


def _clock(value: datetime) -> str:
    return value.strftime("%H:%M")


def span(start: datetime, end: datetime | None) -> str:
    """``Tue 14 Mar 2026, 02:00-03:00 UTC`` (the end's date too when it differs)."""
    if end is None:
        return f"{_day(start)}, {_clock(start)} UTC, ongoing"
    if end.date() == start.date():
        return f"{_day(start)}, {_clock(start)}\u2013{_clock(end)} UTC"
    return f"{_day(start)}, {_clock(start)} UTC \u2013 {_day(end)}, {_clock(end)} UTC"


class PublicPages:
    """The status page of one app and its node-local schedule."""

    def __init__(
        self,
        service: EnhancedMaintenanceModeService,
        *,
        title: str,
        max_age: int,
        refresh: float,
    ) -> None:
        self.service = service
        self.title = title
        self.max_age = max(0, int(max_age))
        self.schedule = PublicScheduleCache(service.db, refresh=refresh)
        self._page: tuple[tuple[Any, ...], bytes, str] | None = None
        self._lock = threading.Lock()

    # -- what the banner and the API read ----------------------------------------
    def current(self, status: MaintenanceStatus | None = None) -> PublicSchedule:
        """The schedule as of ``status`` (default: this node's)."""
        return self.schedule.get(status or self.service.status)

    def announcement(self, status: MaintenanceStatus | None = None) -> UpcomingWindow | None:
        """The window to announce now (``MAINTENANCE_ANNOUNCE_BEFORE`` ahead of its start)."""
        lead = self.service.settings.announce_before
        if lead <= 0:
            return None
        return announcement(self.current(status), utcnow(), lead)

    # -- the page ------------------------------------------------------------------
    def view(self) -> Response:
        """GET: the page, 304 when the client's ``If-None-Match`` still matches."""
        status = self.service.status
        schedule = self.current(status)
        # The message counts minutes down; everything else changes with the version.
        key = (status.version, schedule.stamp, int(time.time() // 60))
        page = self._page
        if page is None or page[0] != key:
            body = self._render(status, schedule).encode()
            etag = hashlib.sha256(body).hexdigest()[:24]
            page = (key, body, etag)
            with self._lock:
                self._page = page
        response = Response(page[1], mimetype="text/html")
        response.set_etag(page[2], weak=True)
        response.cache_control.public = True
        response.cache_control.max_age = self.max_age
        response.make_conditional(request)
        return response

    def _render(self, status: MaintenanceStatus, schedule: PublicSchedule) -> str:
        public = public_status(status)
        shown = status.mode if public["is_active"] and not public["test_mode"] else None
        state, headline = _STATES.get(shown, _STATES[MaintenanceMode.NORMAL])
        now = utcnow()
        return render_template(
            "maintenance/status_page.html",
            title=self.title,
            state=state,
            headline=headline,
            status=public,
            until=(
                span(status.started_at, status.estimated_completion)
                if shown is not None and status.started_at is not None
                else None
            ),
            upcoming=[(w, span(w.start_at, w.end_at)) for w in schedule.upcoming],
            history=[(p, span(p.started_at, p.ended_at)) for p in _past(schedule.history, now)],
            available=schedule.available,
            updated=now.strftime("%d %b %Y %H:%M UTC"),
        )


def _past(history: tuple[PastMaintenance, ...], now: datetime) -> list[PastMaintenance]:
    return [p for p in history if p.ended_at is not None and p.ended_at <= now]


def pages_of(app: Flask) -> PublicPages | None:
    """The ``PublicPages`` ``init_public`` made for ``app``, if any."""
    found = app.extensions.get(EXTENSION)
    return found if isinstance(found, PublicPages) else None


def upcoming_windows_view(app: Flask) -> list[dict[str, Any]] | None:
    """The status API's ``upcoming_windows`` (None when the app has no public pages)."""
    pages = pages_of(app)
    return None if pages is None else [w.to_dict() for w in pages.current().upcoming]


def status_page_url() -> str | None:
    """Jinja global: where the status page is (None when turned off)."""
    if not current_app.config.get("MAINTENANCE_STATUS_PAGE"):
        return None
    return url_for(f"{BLUEPRINT}.page")


def init_public(app: Flask, service: EnhancedMaintenanceModeService) -> PublicPages:
    """Set up the schedule, the status page route (unless turned off) and its Jinja global."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    c = app.config
    pages = PublicPages(
        service,
        title=str(c["MAINTENANCE_STATUS_PAGE_TITLE"]),
        max_age=int(c["MAINTENANCE_STATUS_PAGE_MAX_AGE"]),
        refresh=float(c["MAINTENANCE_SCHEDULE_REFRESH"]),
    )
    app.extensions[EXTENSION] = pages
    path = c["MAINTENANCE_STATUS_PAGE"]
    if path:
        bp = Blueprint(BLUEPRINT, __name__)
        bp.add_url_rule(str(path), "page", pages.view, methods=["GET"])
        app.register_blueprint(bp)
    app.jinja_env.globals["maintenance_status_page_url"] = status_page_url
    return pages
