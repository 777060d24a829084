"""The user-facing banner for pages that stay available during maintenance, and the
announcement of a scheduled window ``MAINTENANCE_ANNOUNCE_BEFORE`` ahead of its start.

Templates call ``{{ maintenance_banner() }}`` (empty when there is nothing to
say) or read ``maintenance_status()`` to render their own.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, has_request_context, render_template
from markupsafe import Markup

from ..domain.messages import build_message
from ..domain.modes import MaintenanceMode
from ..domain.status import MaintenanceStatus
from ..public_schedule import UpcomingWindow
from .payloads import public_status
from .state import WebState, state_of
from .status_page import pages_of, span, status_page_url

_TITLES = {
    MaintenanceMode.NORMAL: "Maintenance in progress.",
    MaintenanceMode.EMERGENCY: "Emergency maintenance.",
    MaintenanceMode.TEST: "Maintenance rehearsal.",
}


def _state() -> WebState:
    return state_of(current_app)


def banner_html(
    status: MaintenanceStatus,
    *,
    is_admin: bool = False,
    announce: UpcomingWindow | None = None,
    status_page: str | None = None,
) -> Markup:
    """The banner for ``status`` (nothing when inactive, and for users during a rehearsal),
    and the announcement of the upcoming window ``announce``, if any."""
    current = status.is_active and not (status.test_mode and not is_admin)
    if not current and announce is None:
        return Markup("")
    note = None
    if current and is_admin:
        note = (
            "Nothing is blocked; would-be refusals are being recorded."
            if status.test_mode
            else "You are an administrator: your requests are not blocked."
        )
    html = render_template(
        "maintenance/banner.html",
        current=current,
        mode=status.mode.value,
        version=status.version,
        title=_TITLES[status.mode],
        message=build_message(status, None) if current else None,
        admin_note=note,
        announce=announce,
        announce_when=span(announce.start_at, announce.end_at) if announce else None,
        status_page=status_page,
    )
    return Markup(html)


def maintenance_banner() -> Markup:
    """Jinja global: the banner for the current request's user."""
    state = _state()
    status = state.service.status
    pages = pages_of(current_app)
    announce = pages.announcement(status) if pages is not None else None
    if not status.is_active and announce is None:
        return Markup("")
    admin = has_request_context() and state.identity().is_admin
    page = status_page_url() if announce is not None and has_request_context() else None
    return banner_html(status, is_admin=admin, announce=announce, status_page=page)


def maintenance_status() -> dict[str, Any]:
    """Jinja global: what a user may know about maintenance (see ``payloads.public_status``)."""
    return public_status(_state().service.status)


def register_template_helpers(app: Flask) -> None:
    """Make ``maintenance_banner`` and ``maintenance_status`` available in every template."""
    app.jinja_env.globals.update(
        maintenance_banner=maintenance_banner, maintenance_status=maintenance_status
    )
