"""HTTP 503 maintenance responses: JSON for API clients, a styled page for browsers,
with ``Retry-After`` and ``Cache-Control: no-store``; message templates per operation type."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Request, Response, render_template
from flask import request as current_request

from ..domain.messages import build_message, expected_end, lead_message
from ..domain.modes import MaintenanceMode, OperationType
from ..domain.operations import SEED_REGISTRY, OperationRegistry
from ..domain.status import MaintenanceStatus, utcnow

if TYPE_CHECKING:
    from .config import WebConfig

#: Headline per operation type of the seed vocabulary (the page title and the JSON
#: ``title``; an app's own: ``OperationRegistry.title``).
OPERATION_TITLES: dict[OperationType, str] = {op: SEED_REGISTRY.title(op) for op in SEED_REGISTRY}

_MODE_TITLES = {
    MaintenanceMode.NORMAL: "Scheduled maintenance",
    MaintenanceMode.EMERGENCY: "Emergency maintenance",
    MaintenanceMode.TEST: "Maintenance rehearsal",
}


def _until(status: MaintenanceStatus) -> str:
    end = status.estimated_completion
    return end.strftime("%H:%M UTC on %d %b %Y") if end else "as soon as possible"


def operation_message(
    status: MaintenanceStatus,
    operation: OperationType | None,
    templates: Mapping[str, str] | None = None,
    now: datetime | None = None,
    operations: OperationRegistry = SEED_REGISTRY,
) -> str:
    """The user-facing text for ``operation``: an app template when configured, else the
    one its vocabulary (``operations``) words.

    App templates (``MAINTENANCE_MESSAGES``, keyed by operation value or ``default``)
    may use ``{reason}``, ``{until}``, ``{retry_after}``, ``{mode}`` and ``{operation}``.
    """
    key = operation.value if operation is not None else "default"
    template = (templates or {}).get(key) or (templates or {}).get("default")
    if template is None:
        return build_message(status, operation, now, operations)
    return template.format(
        reason=status.reason or "maintenance",
        until=_until(status),
        retry_after=status.retry_after(now) or "",
        mode=status.mode.value,
        operation=key,
    )


def _page_texts(
    status: MaintenanceStatus,
    operation: OperationType,
    templates: Mapping[str, str] | None,
    message: str,
    now: datetime,
    operations: OperationRegistry,
) -> tuple[str, str | None, str | None]:
    """The 503 page's lead, reason and expected end, each said once: the vocabulary's
    lead sentence with the reason and end on their own lines; an app template's text as
    written, with only what it does not already say on lines of their own."""
    reason, end = status.reason, expected_end(status, now)
    custom = templates and (templates.get(operation.value) or templates.get("default"))
    if not custom:
        return lead_message(status, operation, operations), reason, end
    until = _until(status)
    return (
        message,
        None if reason and reason in message else reason,
        None if end and until in message else end,
    )


def _reload_url(request: Request) -> str:
    """Where "try again" and the page's own reload go: this URL for a GET (a plain GET,
    never a re-submitted form); for a refused POST the same-site page the form was on,
    else the home page."""
    if request.method in ("GET", "HEAD"):
        return request.full_path.rstrip("?")
    referrer = request.referrer or ""
    if referrer.startswith(request.host_url):
        return "/" + referrer[len(request.host_url) :]
    return request.script_root + "/"


def wants_json(request: Request, json_paths: tuple[str, ...] = ("/api/",)) -> bool:
    """JSON when the client prefers it by ``Accept``; on a tie (``*/*``) for API paths,
    JSON request bodies and XHR; a browser asking for HTML gets HTML."""
    accept = request.accept_mimetypes
    json_q, html_q = accept["application/json"], accept["text/html"]
    if json_q != html_q:
        return json_q > html_q
    return (
        request.is_json
        or request.headers.get("X-Requested-With", "").lower() == "xmlhttprequest"
        or any(request.path.startswith(p) for p in json_paths)
    )


def maintenance_body(
    status: MaintenanceStatus,
    operation: OperationType,
    message: str,
    now: datetime | None = None,
    operations: OperationRegistry = SEED_REGISTRY,
) -> dict[str, Any]:
    """The JSON body of a 503: what was refused, why, in which mode, until when."""
    end = status.estimated_completion
    return {
        "error": "maintenance",
        "operation": operation.value,
        "title": operations.title(operation),
        "reason": status.reason,
        "mode": status.mode.value,
        "estimated_completion": end.isoformat() if end else None,
        "retry_after": status.retry_after(now),
        "message": message,
    }


def maintenance_headers(status: MaintenanceStatus, now: datetime | None = None) -> dict[str, str]:
    """``Retry-After`` (omitted when the end is unknown) and no caching anywhere."""
    headers = {
        "Cache-Control": "no-store",
        "Vary": "Accept",
        "X-Maintenance-Mode": status.mode.value,
    }
    retry = status.retry_after(now)
    if retry is not None:
        headers["Retry-After"] = str(retry)
    return headers


def build_response(
    request: Request,
    status: MaintenanceStatus,
    operation: OperationType,
    *,
    templates: Mapping[str, str] | None = None,
    template: str = "maintenance/blocked.html",
    json_paths: tuple[str, ...] = ("/api/",),
    status_url: str | None = None,
    code: int = 503,
    operations: OperationRegistry = SEED_REGISTRY,
    poll_seconds: tuple[float, float] = (5.0, 60.0),
) -> Response:
    """The 503 answer to a refused request, negotiated by ``Accept``.

    The HTML page polls ``status_url`` (a cheap read of the node's cache) with
    jittered backoff between ``poll_seconds`` (min, max), sooner when the expected
    end is near, later when the server answers with ``Retry-After``; it holds no
    connection open, so any number of viewers costs the server no thread.
    """
    now = utcnow()
    message = operation_message(status, operation, templates, now, operations)
    body = maintenance_body(status, operation, message, now, operations)
    headers = maintenance_headers(status, now)
    if wants_json(request, json_paths):
        body["status_url"] = status_url
        return Response(json.dumps(body), status=code, headers=headers, mimetype="application/json")
    lead, reason, end = _page_texts(status, operation, templates, message, now, operations)
    html = render_template(
        template,
        body=body,
        status=status,
        mode_title=_MODE_TITLES[status.mode],
        until=_until(status) if status.estimated_completion else None,
        lead=lead,
        reason=reason,
        expected_end=end,
        reload_url=_reload_url(request),
        home_url=request.script_root + "/",
        emergency=status.mode is MaintenanceMode.EMERGENCY,
        status_url=status_url,
        poll_min_ms=int(poll_seconds[0] * 1000),
        poll_max_ms=int(poll_seconds[1] * 1000),
    )
    return Response(html, status=code, headers=headers, mimetype="text/html")


def app_response(
    config: WebConfig,
    status: MaintenanceStatus,
    operation: OperationType,
    *,
    code: int | None = None,
    operations: OperationRegistry = SEED_REGISTRY,
) -> Response:
    """``build_response`` for the current request, with one app's templates, paths,
    vocabulary (``operations``) and status code (``MAINTENANCE_STATUS_CODE``); a browser
    is sent to ``MAINTENANCE_REDIRECT_URL`` instead when the app set one (API clients
    still get the JSON answer)."""
    req = current_request._get_current_object()  # type: ignore[attr-defined]
    if config.redirect_url and not wants_json(req, config.json_paths):
        headers = maintenance_headers(status)
        headers["Location"] = config.redirect_url
        return Response(status=302, headers=headers)
    return build_response(
        req,
        status,
        operation,
        templates=config.messages,
        template=config.template,
        json_paths=config.json_paths,
        status_url=f"{config.api_prefix}/status" if config.api_enabled else None,
        code=code if code is not None else config.status_code,
        operations=operations,
        poll_seconds=(config.poll_min_seconds, config.poll_max_seconds),
    )
