"""The user-facing banner for pages that stay available during maintenance, and the
announcement of a scheduled window ``MAINTENANCE_ANNOUNCE_BEFORE`` ahead of its start.

Templates call ``{{ maintenance_banner() }}`` (empty when there is nothing to
say) or read ``maintenance_status()`` to render their own.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Flask,
    Response,
    after_this_request,
    current_app,
    g,
    has_request_context,
    render_template,
    request,
)
from markupsafe import Markup

from ..domain.messages import build_message, expected_end
from ..domain.modes import MaintenanceMode
from ..domain.status import MaintenanceStatus
from ..public_schedule import UpcomingWindow
from .payloads import public_status
from .session_manager import (
    SIGNED_OUT_COOKIE,
    SIGNED_OUT_REASONS,
    SIGNED_OUT_SAID,
    SIGNED_OUT_TOLD,
)
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


#: Why a user was signed out (``session_manager.turn_away``'s reasons), in their words.
_SIGNED_OUT_WHY = {
    "invalidated": "maintenance started, and every user session was ended",
    "logins are blocked": "sign-ins are closed during maintenance",
    "critical-only lockdown": "an emergency lockdown is in effect",
}


def signed_out_notice() -> Markup:
    """Jinja global: on the first page after this browser's session was ended by
    maintenance, say so, why, and who may sign in now (then never again)."""
    if not has_request_context():
        return Markup("")
    here = g.get(SIGNED_OUT_COOKIE)  # this very request was turned away
    code = here or request.cookies.get(SIGNED_OUT_COOKIE, "")
    if not code.isdigit() or int(code) >= len(SIGNED_OUT_REASONS):
        return Markup("")
    why = SIGNED_OUT_REASONS[int(code)]
    # Told already: a request sent beside that page (its favicon), turned away too and
    # answered after it, set the notice again. Said once means once.
    told_before = not here and SIGNED_OUT_TOLD in request.cookies

    @after_this_request
    def _said(response: Response) -> Response:
        if SIGNED_OUT_COOKIE in request.cookies:
            response.delete_cookie(SIGNED_OUT_COOKIE)
        if not told_before:
            response.set_cookie(SIGNED_OUT_TOLD, "1", max_age=600, httponly=True, samesite="Lax")
        return response

    if told_before:
        return Markup("")
    setattr(g, SIGNED_OUT_SAID, True)

    who = (
        "Only critical administrators can sign in now."
        if why == "critical-only lockdown"
        else "Only administrators can sign in until maintenance ends."
    )
    return Markup(
        render_template(
            "maintenance/notice.html",
            kind="signed-out",
            headline="You were signed out",
            text=f"because {_SIGNED_OUT_WHY.get(str(why), 'of maintenance')}. {who}",
        )
    )


def login_notice() -> Markup:
    """Jinja global for login pages: while non-admin logins are refused, warn before any
    credentials are typed (nothing during a rehearsal or when logins are open)."""
    status = _state().service.status
    if not (status.is_active and status.login_blocked and not status.test_mode):
        return Markup("")
    who = "only critical administrators" if status.critical_admin_only else "only administrators"
    return Markup(
        render_template(
            "maintenance/notice.html",
            kind="login-blocked",
            headline="Sign-in is limited during maintenance",
            text=f"Right now {who} can sign in; other accounts are refused until it ends"
            + (f". Expected end: {expected_end(status)}." if status.estimated_completion else "."),
        )
    )


def maintenance_banner() -> Markup:
    """Jinja global: the banner for the current request's user, after the notice that
    they were signed out, if they just were."""
    notice = signed_out_notice()
    state = _state()
    status = state.service.status
    pages = pages_of(current_app)
    announce = pages.announcement(status) if pages is not None else None
    if not status.is_active and announce is None:
        return notice
    admin = has_request_context() and state.identity().is_admin
    page = status_page_url() if announce is not None and has_request_context() else None
    return notice + banner_html(status, is_admin=admin, announce=announce, status_page=page)


def maintenance_status() -> dict[str, Any]:
    """Jinja global: what a user may know about maintenance (see ``payloads.public_status``)."""
    return public_status(_state().service.status)


def register_template_helpers(app: Flask) -> None:
    """Make ``maintenance_banner`` and ``maintenance_status`` available in every template."""
    app.jinja_env.globals.update(
        maintenance_banner=maintenance_banner,
        maintenance_status=maintenance_status,
        maintenance_login_notice=login_notice,
    )
