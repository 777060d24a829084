"""The user-facing banner for pages that stay available during maintenance.

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
from .payloads import public_status
from .state import WebState, state_of

_TITLES = {
    MaintenanceMode.NORMAL: "Maintenance in progress.",
    MaintenanceMode.EMERGENCY: "Emergency maintenance.",
    MaintenanceMode.TEST: "Maintenance rehearsal.",
}


def _state() -> WebState:
    return state_of(current_app)


def banner_html(status: MaintenanceStatus, *, is_admin: bool = False) -> Markup:
    """The banner for ``status`` (empty when inactive, and for users during a rehearsal)."""
    if not status.is_active or (status.test_mode and not is_admin):
        return Markup("")
    note = None
    if is_admin:
        note = (
            "Nothing is blocked; would-be refusals are being recorded."
            if status.test_mode
            else "You are an administrator: your requests are not blocked."
        )
    html = render_template(
        "maintenance/banner.html",
        mode=status.mode.value,
        version=status.version,
        title=_TITLES[status.mode],
        message=build_message(status, None),
        admin_note=note,
    )
    return Markup(html)


def maintenance_banner() -> Markup:
    """Jinja global: the banner for the current request's user."""
    state = _state()
    status = state.service.status
    if not status.is_active:
        return Markup("")
    admin = has_request_context() and state.identity().is_admin
    return banner_html(status, is_admin=admin)


def maintenance_status() -> dict[str, Any]:
    """Jinja global: what a user may know about maintenance (see ``payloads.public_status``)."""
    return public_status(_state().service.status)


def register_template_helpers(app: Flask) -> None:
    """Make ``maintenance_banner`` and ``maintenance_status`` available in every template."""
    app.jinja_env.globals.update(
        maintenance_banner=maintenance_banner, maintenance_status=maintenance_status
    )
