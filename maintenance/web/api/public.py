"""The public read API: status, blocked operations, messages, the live stream and the
OpenAPI document, for everyone (administrators get fuller views)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, request

from ...domain.modes import OperationType, parse_operation
from ...errors import ApiError
from ..guards import json_response
from ..payloads import (
    PublicStatusCache,
    admin_status,
    blocked_operations_view,
    message_view,
    public_status,
)
from ..status_page import upcoming_windows_view
from ..stream import StatusStreamHub, parse_last_event_id
from .openapi import build_openapi

if TYPE_CHECKING:
    from ...service import EnhancedMaintenanceModeService
    from ..state import WebState

_OPERATIONS = frozenset(o.value for o in OperationType)
#: ``(rule, endpoint, view method, HTTP methods)`` of the blueprint.
ROUTES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("/status", "status", "_status", ("GET",)),
    ("/blocked-operations", "blocked_operations", "_blocked", ("GET",)),
    ("/message", "message", "_message", ("GET",)),
    ("/stream", "stream", "_stream", ("GET",)),
    ("/openapi.json", "openapi", "_openapi", ("GET",)),
)


class MaintenanceStatusAPI:
    """What the status endpoints answer, usable without HTTP too.

    ``get_status``/``get_blocked_operations``/``get_maintenance_message`` return
    JSON-ready dicts; ``blueprint()`` serves them for the app whose ``WebState``
    it was built with. Non-admins get only what a user needs: no administrator
    identities, node ids, activation ids or degraded reasons.
    """

    def __init__(
        self, service: EnhancedMaintenanceModeService, *, web: WebState | None = None
    ) -> None:
        self.service = service
        self.web = web
        self.hub = StatusStreamHub(service)
        self._public = PublicStatusCache()

    # -- the Python API ----------------------------------------------------------
    def get_status(self, *, admin: bool = False) -> dict[str, Any]:
        """The status (public view; ``admin=True`` adds who, counters, health and nodes)."""
        return admin_status(self.service) if admin else public_status(self.service.status)

    def get_blocked_operations(self, *, admin: bool = False) -> dict[str, Any]:
        """Operation types refused right now, with their messages (admins: attempt stats)."""
        return blocked_operations_view(self.service, admin=admin)

    def get_maintenance_message(
        self, operation: OperationType | str | None = None
    ) -> dict[str, Any]:
        """The user-facing message for ``operation`` (or in general)."""
        op = parse_operation(operation) if operation is not None else None
        return message_view(self.service, op)

    # -- views -------------------------------------------------------------------
    @property
    def _app(self) -> WebState:
        if self.web is None:
            raise RuntimeError("the API's views need the app state (WebState) it serves")
        return self.web

    def _is_admin(self) -> bool:
        return self._app.identity().is_admin

    def _status(self) -> Response:
        upcoming = upcoming_windows_view(current_app)
        if self._is_admin():
            body = self.get_status(admin=True)
            if upcoming is not None:
                body["upcoming_windows"] = upcoming
            return json_response(body)
        return json_response(self._public.get(self.service.status, upcoming))

    def _blocked(self) -> Response:
        return json_response(self.get_blocked_operations(admin=self._is_admin()))

    def _message(self) -> Response:
        raw = request.args.get("operation")
        if raw is not None and raw not in _OPERATIONS:
            raise ApiError(
                400, "validation_error", f"unknown operation type {raw!r}", field="operation"
            )
        return json_response(self.get_maintenance_message(raw))

    def _stream(self) -> Response:
        raw = request.headers.get("Last-Event-ID")
        if raw is None:
            raw = request.args.get("last_event_id")
        last = parse_last_event_id(raw)
        if raw is not None and last is None:
            raise ApiError(
                400,
                "validation_error",
                "Last-Event-ID must be a status version",
                field="Last-Event-ID",
            )
        render: Callable[[Any], dict[str, Any]]
        render = self._admin_view if self._is_admin() else public_status
        config = self._app.config
        body = self.hub.events(
            render,
            last_event_id=last,
            heartbeat=config.sse_heartbeat,
            max_seconds=config.sse_max_seconds,
            retry_ms=config.sse_retry_ms,
        )
        return Response(
            body,
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def _admin_view(self, _status: Any) -> dict[str, Any]:
        return admin_status(self.service)  # fresh counters and nodes on every event

    def _openapi(self) -> Response:
        return json_response(build_openapi(self._app.config.api_prefix))

    def blueprint(self, name: str = "public") -> Blueprint:
        """The read routes (mounted under the API prefix by ``api_blueprint``)."""
        bp = Blueprint(name, __name__)
        for rule, endpoint, view, methods in ROUTES:
            bp.add_url_rule(rule, endpoint, getattr(self, view), methods=list(methods))
        return bp
