"""``MaintenanceStatusAPI`` and its blueprint: status, blocked operations, messages and a
live stream for everyone; enable, disable, emergency, history and sessions for administrators."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, request

from ..domain.modes import MaintenanceMode, OperationType, parse_operation
from ..domain.policy import NEVER_BLOCKED
from ..domain.validation import MAX_DURATION, MAX_REASON, validate_note

# Also registers the emergency report's renderer for the admin panel's report pages.
from ..emergency import DeactivationRefused, controller_for
from ..errors import ConflictError, NotAuthorized, StoreUnavailable, ValidationError
from .guards import (
    ApiError,
    check_same_origin,
    error_response,
    json_body,
    json_response,
    validation_error,
)
from .identity import WebIdentity
from .openapi import DURATION_PATTERN as OPENAPI_DURATION
from .openapi import build_openapi
from .payloads import (
    PublicStatusCache,
    admin_status,
    blocked_operations_view,
    message_view,
    public_status,
)
from .status_page import upcoming_windows_view
from .stream import StatusStreamHub, parse_last_event_id

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService
    from .config import WebConfig
    from .middleware import MaintenanceModeMiddleware

_OPT_STR = (str, type(None))
_OPT_NUM = (int, float, type(None))
_OPT_INT = (int, type(None))
_OPT_BOOL = (bool, type(None))

ENABLE_FIELDS: dict[str, tuple[type, ...]] = {
    "reason": (str,),
    "duration": (str, int, type(None)),
    "mode": _OPT_STR,
    "blocked_operations": (list, type(None)),
    "critical_admin_only": (bool,),
    "block_login": _OPT_BOOL,
    "invalidate_sessions": _OPT_BOOL,
    "wait": _OPT_NUM,
    "expected_version": _OPT_INT,
}
DISABLE_FIELDS: dict[str, tuple[type, ...]] = {
    "requeue": (bool,),
    "reason": _OPT_STR,
    "wait": _OPT_NUM,
    "expected_version": _OPT_INT,
}
INVALIDATE_FIELDS: dict[str, tuple[type, ...]] = {"reason": _OPT_STR, "wait": _OPT_NUM}
LOGIN_BLOCK_FIELDS: dict[str, tuple[type, ...]] = {"blocked": (bool,), "reason": _OPT_STR}
EMERGENCY_FIELDS: dict[str, tuple[type, ...]] = {
    "reason": (str,),
    "duration": (str, int, type(None)),
    "critical_admin_only": (bool,),
    "grace_period": _OPT_NUM,
    "kill_after": _OPT_NUM,
    "wait": _OPT_NUM,
}
EMERGENCY_OFF_FIELDS: dict[str, tuple[type, ...]] = {
    "requeue": (bool,),
    "force": (bool,),
    "reason": _OPT_STR,
    "wait": _OPT_NUM,
}
BYPASS_FIELDS: dict[str, tuple[type, ...]] = {"ttl": _OPT_INT}
MAX_WAIT = 30.0
MAX_HISTORY = 1000
MAX_ID = 2**62


#: Durations the API accepts as text: one number and unit, never beyond 7 days.
DURATION_PATTERN = re.compile(OPENAPI_DURATION)
_INTEGER = re.compile(r"-?[0-9]{1,19}")
_MODES = frozenset(m.value for m in MaintenanceMode)
_NEVER_BLOCKED = frozenset(op.value for op in NEVER_BLOCKED)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        raise ApiError(400, "validation_error", f"{name} must be an integer", field=name)
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(
            400, "validation_error", f"{name} must be between {low} and {high}", field=name
        )
    return value


def _wait(body: dict[str, Any]) -> float | None:
    wait = body.get("wait")
    if wait is not None and not 0 <= wait <= MAX_WAIT:
        raise ApiError(400, "validation_error", f"wait must be 0..{MAX_WAIT:g}", field="wait")
    return None if wait is None else float(wait)


def _strict_enable(body: dict[str, Any]) -> None:
    """The API's own, exact rules (the core also accepts ``NORMAL``, ``1h30m``...)."""
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "validation_error", "reason is required", field="reason")
    _check_length(reason)
    duration = body.get("duration")
    if isinstance(duration, int) and not 1 <= duration <= MAX_DURATION:
        raise ApiError(
            400, "validation_error", f"duration must be 1..{MAX_DURATION} s", field="duration"
        )
    if isinstance(duration, str) and not DURATION_PATTERN.fullmatch(duration):
        raise ApiError(
            400,
            "validation_error",
            "duration must be seconds or one number and unit (90s, 30m, 2h, 1d), at most 7 days",
            field="duration",
        )
    mode = body.get("mode")
    if mode is not None and mode not in _MODES:
        raise ApiError(400, "validation_error", f"unknown mode {mode!r}", field="mode")
    ops = body.get("blocked_operations")
    if ops is not None:
        for op in ops:
            if not isinstance(op, str) or op not in _OPERATIONS or op in _NEVER_BLOCKED:
                raise ApiError(
                    400,
                    "validation_error",
                    f"{op!r} cannot be blocked (known: {', '.join(sorted(_OPERATIONS))})",
                    field="blocked_operations",
                )


_OPERATIONS = frozenset(o.value for o in OperationType)


def _check_length(reason: str | None) -> None:
    # The document's maxLength: on the text as sent (the core counts it stripped).
    if reason is not None and len(reason) > MAX_REASON:
        raise ApiError(
            400, "validation_error", f"reason is longer than {MAX_REASON}", field="reason"
        )


def _note(body: dict[str, Any]) -> str | None:
    """The optional ``reason`` note of a control request (the core's note rules)."""
    reason = body.get("reason")
    _check_length(reason)
    return validate_note(reason)


def _expected_version(body: dict[str, Any]) -> int | None:
    value = body.get("expected_version")
    if value is not None and value < 0:
        raise ApiError(
            400, "validation_error", "expected_version must be >= 0", field="expected_version"
        )
    return value


class MaintenanceStatusAPI:
    """What the status endpoints answer, usable without HTTP too.

    ``get_status``/``get_blocked_operations``/``get_maintenance_message`` return
    JSON-ready dicts; ``blueprint()`` serves them (and the admin controls).
    Non-admins get only what a user needs: no administrator identities, node
    ids, activation ids or degraded reasons.
    """

    def __init__(
        self,
        service: EnhancedMaintenanceModeService,
        *,
        middleware: MaintenanceModeMiddleware | None = None,
    ) -> None:
        self.service = service
        self.middleware = middleware
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

    # -- the middleware that serves the blueprint ----------------------------------
    @property
    def _web(self) -> MaintenanceModeMiddleware:
        if self.middleware is None:
            raise RuntimeError("the API's views need the MaintenanceModeMiddleware that built it")
        return self.middleware

    @property
    def _config(self) -> WebConfig:
        return self._web.config

    def _identity(self) -> WebIdentity:
        return self._web.identity()

    def _require_admin(self) -> WebIdentity:
        who = self._identity()
        if not who.authenticated:
            raise ApiError(401, "unauthorized", "log in as an administrator")
        if not who.is_admin:
            raise ApiError(403, "forbidden", "administrators only")
        return who

    def _write_guard(self) -> WebIdentity:
        check_same_origin(request, self._config.trusted_origins)
        return self._require_admin()

    # -- views ---------------------------------------------------------------------
    def _status(self) -> Response:
        upcoming = upcoming_windows_view(current_app)
        if self._identity().is_admin:
            body = self.get_status(admin=True)
            if upcoming is not None:
                body["upcoming_windows"] = upcoming
            return json_response(body)
        return json_response(self._public.get(self.service.status, upcoming))

    def _blocked(self) -> Response:
        return json_response(self.get_blocked_operations(admin=self._identity().is_admin))

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
        service = self.service
        render: Callable[[Any], dict[str, Any]]
        if self._identity().is_admin:
            render = lambda _status: admin_status(service)  # noqa: E731
        else:
            render = public_status
        config = self._config
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

    def _openapi(self) -> Response:
        return json_response(build_openapi(self._config.api_prefix))

    def _enable(self) -> Response:
        who = self._write_guard()
        body = json_body(request, ENABLE_FIELDS)
        _strict_enable(body)
        wait = _wait(body)
        try:
            result = self.service.enable_maintenance(
                body["reason"],
                body.get("duration"),
                mode=body.get("mode") or "normal",
                enabled_by=who.username or "admin",
                blocked_operations=body.get("blocked_operations"),
                wait=wait,
                expected_version=_expected_version(body),
                critical_admin_only=bool(body.get("critical_admin_only", False)),
                block_login=body.get("block_login"),
                details={"via": "api"},
            )
        except ValidationError as exc:
            raise validation_error(exc) from None
        invalidate = body.get("invalidate_sessions")
        if invalidate is None:
            invalidate = self._config.invalidate_on_enable
        sessions = None
        manager = self._web.sessions
        if invalidate and not result.status.test_mode and manager is not None:
            sessions = manager.invalidate_non_admin_sessions(who.username, wait=wait).to_dict()
        return json_response({**result.to_dict(), "sessions": sessions})

    def _disable(self) -> Response:
        who = self._write_guard()
        body = json_body(request, DISABLE_FIELDS)
        result = self.service.disable_maintenance(
            who.username or "admin",
            requeue=bool(body.get("requeue", True)),
            wait=_wait(body),
            expected_version=_expected_version(body),
            reason=_note(body),
        )
        return json_response(result.to_dict())

    def _history(self) -> Response:
        self._require_admin()
        limit = _int_arg("limit", 50, 1, MAX_HISTORY)
        before = request.args.get("before_id")
        filters: dict[str, Any] = {}
        if before is not None:
            filters["before_id"] = _int_arg("before_id", 0, 0, MAX_ID)
        kinds = tuple(k for k in request.args.getlist("kind") if k)
        if kinds:
            filters["kinds"] = kinds
        if request.args.get("activation_id"):
            filters["activation_id"] = request.args["activation_id"]
        events = self.service.history(limit, **filters)
        return json_response({"events": [e.to_dict() for e in events]})

    def _sessions(self) -> Response:
        self._require_admin()
        sample = _int_arg("sample", 10, 0, 100)
        manager = self._manager()
        return json_response(manager.get_active_non_admin_sessions(sample=sample).to_dict())

    def _invalidate(self) -> Response:
        who = self._write_guard()
        body = json_body(request, INVALIDATE_FIELDS)
        result = self._manager().invalidate_non_admin_sessions(
            who.username, wait=_wait(body), reason=_note(body)
        )
        return json_response(result.to_dict())

    def _login_block(self) -> Response:
        who = self._write_guard()
        body = json_body(request, LOGIN_BLOCK_FIELDS)
        if "blocked" not in body:
            raise ApiError(400, "validation_error", "blocked is required", field="blocked")
        manager = self._manager()
        change = (
            manager.prevent_non_admin_login if body["blocked"] else manager.allow_non_admin_login
        )
        result = change(who.username, reason=_note(body))
        return json_response(
            {"login_blocked": result.status.login_blocked, "version": result.status.version}
        )

    def _bypass_link(self) -> Response:
        from ..bypass_tokens import create_bypass_link

        who = self._write_guard()
        body = json_body(request, BYPASS_FIELDS)
        config = self._config
        ttl = body.get("ttl") or config.bypass_link_ttl
        if not 60 <= ttl <= 86400:
            raise ApiError(400, "validation_error", "ttl must be 60..86400 seconds", field="ttl")
        url = create_bypass_link(
            self.service,
            who.username or "admin",
            ttl=ttl,
            secret=config.secret_key,
            base_url=request.host_url,
        )
        return json_response({"url": url, "expires_in": ttl})

    def _emergency(self) -> Response:
        """POST: declare an emergency (the admin panel's emergency control posts here)."""
        who = self._write_guard()
        body = json_body(request, EMERGENCY_FIELDS)
        _strict_enable(body)
        manager = self._web.sessions
        grace, kill = body.get("grace_period"), body.get("kill_after")
        result = controller_for(self.service).activate_emergency_mode(
            body["reason"],
            who.username or "admin",
            30 if grace is None else grace,
            10 if kill is None else kill,
            "api",
            duration=body.get("duration"),
            critical_admin_only=bool(body.get("critical_admin_only", False)),
            wait=_wait(body),
            invalidate=manager.invalidate_non_admin_sessions if manager else None,
        )
        return json_response(result.to_dict())

    def _emergency_progress(self) -> Response:
        """GET: where the current emergency stands."""
        self._require_admin()
        return json_response(controller_for(self.service).emergency_progress().to_dict())

    def _emergency_off(self) -> Response:
        """POST: lift the emergency after its checks (409 with the problems otherwise)."""
        who = self._write_guard()
        body = json_body(request, EMERGENCY_OFF_FIELDS)
        try:
            result = controller_for(self.service).deactivate_emergency_mode(
                who.username or "admin",
                requeue=bool(body.get("requeue", True)),
                force=bool(body.get("force", False)),
                wait=_wait(body),
                reason=_note(body),
            )
        except DeactivationRefused as exc:
            raise ApiError(
                409,
                "conflict",
                str(exc),
                current_version=exc.current_version,
                problems=list(exc.check.problems),
            ) from None
        return json_response(result.to_dict())

    def _manager(self) -> Any:
        manager = self._web.sessions
        if manager is None:
            raise ApiError(404, "not_found", "session management is not set up")
        return manager

    # -- the blueprint ---------------------------------------------------------------
    def blueprint(self, name: str = "maintenance_api") -> Blueprint:
        """Routes under the API prefix; errors are JSON (``{"error", "message", "field"}``)."""
        bp = Blueprint(name, __name__)
        routes: list[tuple[str, str, Callable[[], Response], list[str]]] = [
            ("/status", "status", self._status, ["GET"]),
            ("/blocked-operations", "blocked_operations", self._blocked, ["GET"]),
            ("/message", "message", self._message, ["GET"]),
            ("/stream", "stream", self._stream, ["GET"]),
            ("/openapi.json", "openapi", self._openapi, ["GET"]),
            ("/enable", "enable", self._enable, ["POST"]),
            ("/disable", "disable", self._disable, ["POST"]),
            ("/history", "history", self._history, ["GET"]),
            ("/sessions", "sessions", self._sessions, ["GET"]),
            ("/sessions/invalidate", "invalidate_sessions", self._invalidate, ["POST"]),
            ("/login-block", "login_block", self._login_block, ["POST"]),
            ("/bypass-link", "bypass_link", self._bypass_link, ["POST"]),
            ("/emergency", "emergency", self._emergency, ["POST"]),
            ("/emergency", "emergency_progress", self._emergency_progress, ["GET"]),
            ("/emergency/deactivate", "emergency_off", self._emergency_off, ["POST"]),
        ]
        for rule, endpoint, view, methods in routes:
            bp.add_url_rule(rule, endpoint, view, methods=methods)
        allowed: dict[str, set[str]] = {}
        for rule, _endpoint, _view, methods in routes:
            allowed.setdefault(rule, set()).update(methods)

        def unknown(rest: str = "") -> Response:
            # Werkzeug prefers a rule that matches path *and* method, so this catch-all
            # answers unknown paths and wrong methods under the prefix in JSON, as every
            # other error of this API (Flask's own 404/405 pages are HTML).
            methods = sorted(allowed.get(f"/{rest}", ()))
            if methods:
                body = {
                    "error": "method_not_allowed",
                    "message": f"use {', '.join(methods)}",
                    "field": None,
                }
                return json_response(body, 405, {"Allow": ", ".join(methods)})
            raise ApiError(404, "not_found", f"no such endpoint: /{rest}")

        every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        bp.add_url_rule("/", "unknown_root", unknown, methods=every)
        bp.add_url_rule("/<path:rest>", "unknown", unknown, methods=every)
        bp.register_error_handler(ApiError, error_response)
        bp.register_error_handler(ValidationError, lambda e: error_response(validation_error(e)))
        bp.register_error_handler(
            ConflictError,
            lambda e: error_response(
                ApiError(409, "conflict", str(e), current_version=e.current_version)
            ),
        )
        bp.register_error_handler(
            NotAuthorized, lambda e: error_response(ApiError(403, "forbidden", str(e)))
        )
        bp.register_error_handler(
            StoreUnavailable, lambda e: error_response(ApiError(503, "unavailable", str(e)))
        )
        return bp
