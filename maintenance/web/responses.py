"""HTTP 503 maintenance responses: JSON for API clients, a styled page for browsers,
with ``Retry-After`` and ``Cache-Control: no-store``; message templates per operation type."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Request, Response, render_template
from flask import request as current_request

from ..domain.messages import build_message
from ..domain.modes import MaintenanceMode, OperationType
from ..domain.status import MaintenanceStatus, utcnow

if TYPE_CHECKING:
    from .config import WebConfig

Op = OperationType

#: Headline per operation type (the page title and the JSON ``title``).
OPERATION_TITLES: dict[OperationType, str] = {
    Op.CAPTION_GENERATION: "Caption generation is paused",
    Op.JOB_CREATION: "Jobs cannot be created or changed right now",
    Op.PLATFORM_OPERATIONS: "Platform changes are unavailable",
    Op.BATCH_OPERATIONS: "Batch processing is paused",
    Op.USER_DATA_MODIFICATION: "Account changes are unavailable",
    Op.IMAGE_PROCESSING: "Image processing is paused",
    Op.ADMIN_OPERATIONS: "Administration is restricted",
    Op.AUTHENTICATION: "Sign-in is limited to administrators",
    Op.READ_OPERATIONS: "This page is unavailable",
    Op.STATUS_CHECK: "Maintenance in progress",
    Op.UNKNOWN: "This action is unavailable",
}

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
) -> str:
    """The user-facing text for ``operation``: an app template when configured, else the core's.

    App templates (``MAINTENANCE_MESSAGES``, keyed by operation value or ``default``)
    may use ``{reason}``, ``{until}``, ``{retry_after}``, ``{mode}`` and ``{operation}``.
    """
    key = operation.value if operation is not None else "default"
    template = (templates or {}).get(key) or (templates or {}).get("default")
    if template is None:
        return build_message(status, operation, now)
    return template.format(
        reason=status.reason or "maintenance",
        until=_until(status),
        retry_after=status.retry_after(now) or "",
        mode=status.mode.value,
        operation=key,
    )


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
) -> dict[str, Any]:
    """The JSON body of a 503: what was refused, why, in which mode, until when."""
    end = status.estimated_completion
    return {
        "error": "maintenance",
        "operation": operation.value,
        "title": OPERATION_TITLES.get(operation, OPERATION_TITLES[Op.UNKNOWN]),
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
) -> Response:
    """The 503 answer to a refused request, negotiated by ``Accept``."""
    now = utcnow()
    message = operation_message(status, operation, templates, now)
    body = maintenance_body(status, operation, message, now)
    headers = maintenance_headers(status, now)
    if wants_json(request, json_paths):
        body["status_url"] = status_url
        return Response(json.dumps(body), status=code, headers=headers, mimetype="application/json")
    html = render_template(
        template,
        body=body,
        status=status,
        mode_title=_MODE_TITLES[status.mode],
        until=_until(status) if status.estimated_completion else None,
        emergency=status.mode is MaintenanceMode.EMERGENCY,
        status_url=status_url,
        stream_url=f"{status_url.rsplit('/', 1)[0]}/stream" if status_url else None,
    )
    return Response(html, status=code, headers=headers, mimetype="text/html")


def app_response(
    config: WebConfig,
    status: MaintenanceStatus,
    operation: OperationType,
    *,
    code: int = 503,
) -> Response:
    """``build_response`` for the current request, with one app's templates and paths."""
    return build_response(
        current_request._get_current_object(),  # type: ignore[attr-defined]
        status,
        operation,
        templates=config.messages,
        template=config.template,
        json_paths=config.json_paths,
        status_url=f"{config.api_prefix}/status" if config.api_enabled else None,
        code=code,
    )
