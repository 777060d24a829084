"""The public read API: status, blocked operations, messages, the live stream and the
OpenAPI document, for everyone (administrators get fuller views)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, request

from ...domain.modes import OperationType
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
from ..stream import StatusStreamHub, StreamSlots, default_stream_caps, parse_last_event_id
from .openapi import build_openapi

if TYPE_CHECKING:
    from ...service import EnhancedMaintenanceModeService
    from ..state import WebState

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
        self._slots: tuple[StreamSlots, StreamSlots] | None = None

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
        op = self.service.parse_operation(operation) if operation is not None else None
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
            body["allowlist"] = self._allowlist_view()
            return json_response(body)
        return json_response(self._public.get(self.service.status, upcoming))

    def _allowlist_view(self) -> dict[str, Any]:
        app = self._app
        counter = app.allowlisted
        passes = counter.read(self.service.status.activation_id) if counter is not None else {}
        return {**app.config.allowlist.to_dict(), "passes": passes}

    def _blocked(self) -> Response:
        return json_response(self.get_blocked_operations(admin=self._is_admin()))

    def _message(self) -> Response:
        raw = request.args.get("operation")
        if raw is not None:
            try:
                self.service.operations.exact(raw)
            except ValueError as exc:
                raise ApiError(400, "validation_error", str(exc), field="operation") from None
        return json_response(self.get_maintenance_message(raw))

    def stream_slots(self) -> tuple[StreamSlots, StreamSlots]:
        """The (users, administrators) stream budgets of this process, sized on the first
        stream asked for (after a gevent/eventlet worker has monkey-patched, whatever the
        import order) from the configured caps, else from how the server runs requests."""
        if self._slots is None:
            config = self._app.config
            users, admins = default_stream_caps(request.environ)
            if config.sse_max_streams is not None:
                users = config.sse_max_streams
            if config.sse_max_admin_streams is not None:
                admins = config.sse_max_admin_streams
            self._slots = (StreamSlots(users), StreamSlots(admins))
        return self._slots

    def _stream_refused(self) -> Response:
        """503 JSON: no stream slot free here; poll the status (after ``Retry-After``)."""
        config = self._app.config
        low = config.poll_min_seconds
        retry = max(1, round(random.uniform(low, 2 * low)))  # spread the retries out
        return json_response(
            {
                "error": "stream_unavailable",
                "message": "Too many live streams on this server; poll the status instead.",
                "status_url": f"{config.api_prefix}/status",
                "retry_after": retry,
            },
            503,
            headers={"Retry-After": str(retry), "Cache-Control": "no-store"},
        )

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
        admin = self._is_admin()
        slots = self.stream_slots()[1 if admin else 0]
        if not slots.acquire():
            return self._stream_refused()
        render: Callable[[Any], dict[str, Any]]
        render = self._admin_view if admin else public_status
        config = self._app.config
        body = self.hub.events(
            render,
            last_event_id=last,
            heartbeat=config.sse_heartbeat,
            max_seconds=config.sse_max_seconds,
            retry_ms=config.sse_retry_ms,
        )
        response = Response(
            body,
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        response.call_on_close(slots.release)  # the server closes the body, started or not
        return response

    def _admin_view(self, _status: Any) -> dict[str, Any]:
        return admin_status(self.service)  # fresh counters and nodes on every event

    def _openapi(self) -> Response:
        return json_response(build_openapi(self._app.config.api_prefix, self.service.operations))

    def blueprint(self, name: str = "public") -> Blueprint:
        """The read routes (mounted under the API prefix by ``api_blueprint``)."""
        bp = Blueprint(name, __name__)
        for rule, endpoint, view, methods in ROUTES:
            bp.add_url_rule(rule, endpoint, getattr(self, view), methods=list(methods))
        return bp
