"""The pre-rendered maintenance page: an HTML file a reverse proxy serves while the app
itself is restarting or cannot boot (``error_page 502 504`` in nginx, docs/web.md).

With ``MAINTENANCE_STATIC_PAGE`` set to a file path, every web process writes the page
when the app is set up and again on every status change it applies (atomically: a
temporary file renamed over the old one, so the proxy never reads half a page). While
maintenance is on, the page says what the 503 page says (reason, expected end); while it
is off, it says the service is restarting and will be back shortly. It is the app's
own 503 template, rendered for a browser, so it looks like the app's refusals.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask, request

from ..domain.modes import MaintenanceMode, OperationType
from ..domain.status import MaintenanceStatus
from .responses import build_response

if TYPE_CHECKING:
    from .state import WebState

log = logging.getLogger("maintenance.web")
#: What the page says while maintenance is off (the proxy shows it when the app is down).
RESTARTING = "the service is restarting"


def page_status(status: MaintenanceStatus) -> MaintenanceStatus:
    """The status the page is rendered for: ``status`` while maintenance is on, else a
    NORMAL maintenance with no known end and ``RESTARTING`` as the reason."""
    if status.is_active and not status.test_mode:
        return status
    return status.with_changes(
        is_active=True,
        mode=MaintenanceMode.NORMAL,
        test_mode=False,
        reason=RESTARTING,
        estimated_completion=None,
    )


def render_page(app: Flask, state: WebState, status: MaintenanceStatus) -> bytes:
    """The page's HTML for ``status`` (outside any request: a request context of its own)."""
    config = state.config
    with app.test_request_context("/", headers={"Accept": "text/html"}):
        response = build_response(
            request,
            page_status(status),
            OperationType.UNKNOWN,
            templates=config.messages,
            template=config.template,
            json_paths=(),
            status_url=f"{config.api_prefix}/status" if config.api_enabled else None,
            operations=state.service.operations,
        )
        return response.get_data()


def write_page(path: str | os.PathLike[str], html: bytes) -> None:
    """Replace the file at ``path`` with ``html`` atomically (readable by the proxy)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".maintenance-", suffix=".html", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def keep_current(app: Flask, state: WebState, path: str) -> None:
    """Write the page now and on every status change this process applies."""

    def refresh(status: MaintenanceStatus) -> None:
        try:
            write_page(path, render_page(app, state, status))
        except Exception as exc:  # a page not written must not break the status cache
            log.warning("maintenance: static page %s not written: %s", path, exc)

    state.service.cache.add_listener(refresh)
    refresh(state.service.status)
