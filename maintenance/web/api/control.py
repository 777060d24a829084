"""The administrators' API: enable, disable, history, sessions, login blocking, bypass
links and the emergency endpoints. Every view checks the role on the server; every
write also refuses cross-site requests (see ``guards``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from ...bypass_tokens import MAX_LINK_TTL, MIN_LINK_TTL, create_bypass_link
from ...domain.emergency_plan import DEFAULT_GRACE, DEFAULT_KILL_AFTER
from ...domain.enable_request import EnableRequest
from ...domain.validation import MAX_WAIT, exact_length, exact_version, validate_note, validate_wait

# Also registers the emergency report's renderer for the admin panel's report pages.
from ...emergency import DeactivationRefused, controller_for
from ...errors import ApiError
from ..guards import check_same_origin, json_body, json_response
from . import bodies

if TYPE_CHECKING:
    from ..identity import WebIdentity
    from ..session_manager import MaintenanceSessionManager
    from ..state import WebState

_INTEGER = re.compile(r"-?[0-9]{1,19}")
#: ``(rule, endpoint, view method, HTTP methods)`` of the blueprint.
ROUTES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("/enable", "enable", "_enable", ("POST",)),
    ("/disable", "disable", "_disable", ("POST",)),
    ("/history", "history", "_history", ("GET",)),
    ("/sessions", "sessions", "_sessions", ("GET",)),
    ("/sessions/invalidate", "invalidate_sessions", "_invalidate", ("POST",)),
    ("/login-block", "login_block", "_login_block", ("POST",)),
    ("/bypass-link", "bypass_link", "_bypass_link", ("POST",)),
    ("/emergency", "emergency", "_emergency", ("POST",)),
    ("/emergency", "emergency_progress", "_emergency_progress", ("GET",)),
    ("/emergency/deactivate", "emergency_off", "_emergency_off", ("POST",)),
)


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
    return validate_wait(body.get("wait"), maximum=MAX_WAIT)


def _note(body: dict[str, Any]) -> str | None:
    """The optional ``reason`` note of a control request."""
    reason = body.get("reason")
    exact_length(reason)
    return validate_note(reason)


class ControlAPI:
    """The admin endpoints of one app (its ``WebState``: service, settings, sessions)."""

    def __init__(self, web: WebState) -> None:
        self.web = web
        self.service = web.service

    # -- access --------------------------------------------------------------------
    def _require_admin(self) -> WebIdentity:
        who = self.web.identity()
        if not who.authenticated:
            raise ApiError(401, "unauthorized", "log in as an administrator")
        if not who.is_admin:
            raise ApiError(403, "forbidden", "administrators only")
        return who

    def _write_guard(self) -> WebIdentity:
        check_same_origin(request, self.web.config.trusted_origins)
        return self._require_admin()

    def _manager(self) -> MaintenanceSessionManager:
        manager = self.web.sessions
        if manager is None:
            raise ApiError(404, "not_found", "session management is not set up")
        return manager

    # -- views -----------------------------------------------------------------------
    def _enable(self) -> Response:
        who = self._write_guard()
        body = json_body(request, bodies.ENABLE)
        req = EnableRequest.from_json(body, who.username or "admin", details={"via": "api"})
        result = self.service.enable(req)
        invalidate = req.invalidate_sessions
        if invalidate is None:
            invalidate = self.web.config.invalidate_on_enable
        sessions = None
        manager = self.web.sessions
        if invalidate and not result.status.test_mode and manager is not None:
            sessions = manager.invalidate_non_admin_sessions(who.username, wait=req.wait).to_dict()
        return json_response({**result.to_dict(), "sessions": sessions})

    def _disable(self) -> Response:
        who = self._write_guard()
        body = json_body(request, bodies.DISABLE)
        result = self.service.disable_maintenance(
            who.username or "admin",
            requeue=bool(body.get("requeue", True)),
            wait=_wait(body),
            expected_version=exact_version(body.get("expected_version")),
            reason=_note(body),
        )
        return json_response(result.to_dict())

    def _history(self) -> Response:
        self._require_admin()
        limit = _int_arg("limit", 50, 1, bodies.MAX_HISTORY)
        filters: dict[str, Any] = {}
        if request.args.get("before_id") is not None:
            filters["before_id"] = _int_arg("before_id", 0, 0, bodies.MAX_EVENT_ID)
        kinds = tuple(k for k in request.args.getlist("kind") if k)
        if kinds:
            filters["kinds"] = kinds
        if request.args.get("activation_id"):
            filters["activation_id"] = request.args["activation_id"]
        events = self.service.history(limit, **filters)
        return json_response({"events": [e.to_dict() for e in events]})

    def _sessions(self) -> Response:
        self._require_admin()
        sample = _int_arg("sample", 10, 0, bodies.MAX_SAMPLE)
        return json_response(self._manager().get_active_non_admin_sessions(sample=sample).to_dict())

    def _invalidate(self) -> Response:
        who = self._write_guard()
        body = json_body(request, bodies.INVALIDATE)
        result = self._manager().invalidate_non_admin_sessions(
            who.username, wait=_wait(body), reason=_note(body)
        )
        return json_response(result.to_dict())

    def _login_block(self) -> Response:
        who = self._write_guard()
        body = json_body(request, bodies.LOGIN_BLOCK)
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
        who = self._write_guard()
        body = json_body(request, bodies.BYPASS_LINK)
        config = self.web.config
        ttl = body.get("ttl") or config.bypass_link_ttl
        if not MIN_LINK_TTL <= ttl <= MAX_LINK_TTL:
            raise ApiError(
                400,
                "validation_error",
                f"ttl must be {MIN_LINK_TTL}..{MAX_LINK_TTL} seconds",
                field="ttl",
            )
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
        body = json_body(request, bodies.EMERGENCY)
        actor = who.username or "admin"
        # An emergency is an enable request in EMERGENCY mode: the same reason,
        # duration and wait rules.
        fields = {k: body.get(k) for k in ("reason", "duration", "critical_admin_only", "wait")}
        req = EnableRequest.from_json({**fields, "mode": "emergency"}, actor)
        manager = self.web.sessions
        grace, kill = body.get("grace_period"), body.get("kill_after")
        result = controller_for(self.service).activate_emergency_mode(
            req.reason,
            actor,
            DEFAULT_GRACE if grace is None else grace,
            DEFAULT_KILL_AFTER if kill is None else kill,
            "api",
            duration=req.seconds,
            critical_admin_only=req.critical_admin_only,
            wait=req.wait,
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
        body = json_body(request, bodies.EMERGENCY_OFF)
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

    def blueprint(self, name: str = "control") -> Blueprint:
        """The admin routes (mounted under the API prefix by ``api_blueprint``)."""
        bp = Blueprint(name, __name__)
        for rule, endpoint, view, methods in ROUTES:
            bp.add_url_rule(rule, endpoint, getattr(self, view), methods=list(methods))
        return bp
