"""The administrators' API: enable, disable, history, sessions, login blocking, bypass
links and the emergency endpoints. Every view checks the role on the server; every
write also refuses cross-site requests (see ``guards``)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request

from ...commands import Actor, Outcome
from ...commands.actor import LOCKDOWN_REFUSAL, in_lockdown
from ...commands.bypass import bypass_link
from ...commands.disable import disable
from ...commands.emergency import critical_only, declare, lift
from ...commands.enable import enable
from ...commands.login_block import set_login_block
from ...commands.sessions import invalidate_sessions
from ...domain.emergency_plan import DEFAULT_GRACE, DEFAULT_KILL_AFTER
from ...domain.enable_request import EnableRequest
from ...domain.history import validate_kinds
from ...domain.validation import MAX_WAIT, exact_length, exact_version, validate_note, validate_wait

# Also registers the emergency report's renderer for the admin panel's report pages.
from ...emergency import DeactivationRefused, controller_for
from ...errors import ApiError
from ..guards import check_same_origin, json_body, json_response
from ..identity import former
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
    ("/emergency/critical-only", "emergency_critical_only", "_critical_only", ("POST",)),
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
            ended = former()
            if ended is not None and ended.is_admin and in_lockdown(self.service.status):
                # An ordinary admin's session, ended by this request: the lockdown says why.
                raise ApiError(403, "forbidden", LOCKDOWN_REFUSAL)
            raise ApiError(401, "unauthorized", "log in as an administrator")
        if not who.is_admin:
            raise ApiError(403, "forbidden", "administrators only")
        return who

    def _write_guard(self) -> WebIdentity:
        check_same_origin(request, self.web.config.trusted_origins)
        return self._require_admin()

    @staticmethod
    def _actor(who: WebIdentity) -> Actor:
        return Actor(
            name=who.username or "admin",
            channel="api",
            is_admin=who.is_admin,
            is_critical_admin=who.is_critical_admin,
        )

    def _invalidator(self) -> Any:
        manager = self.web.sessions
        return manager.invalidate_non_admin_sessions if manager is not None else None

    @staticmethod
    def _answer(outcome: Outcome) -> Response:
        return json_response(outcome.to_dict())

    def _manager(self) -> MaintenanceSessionManager:
        manager = self.web.sessions
        if manager is None:
            raise ApiError(404, "not_found", "session management is not set up")
        return manager

    # -- views -----------------------------------------------------------------------
    def _enable(self) -> Response:
        who = self._write_guard()
        body = json_body(request, bodies.ENABLE)
        req = EnableRequest.from_json(
            body,
            who.username or "admin",
            details={"via": "api"},
            operations=self.service.operations,
        )
        if req.invalidate_sessions is None:
            req = replace(req, invalidate_sessions=self.web.config.invalidate_on_enable)
        return self._answer(
            enable(self.service, self._actor(who), req, invalidate=self._invalidator())
        )

    def _disable(self) -> Response:
        who = self._write_guard()
        body = json_body(request, bodies.DISABLE)
        outcome = disable(
            self.service,
            self._actor(who),
            requeue=bool(body.get("requeue", True)),
            wait=_wait(body),
            expected_version=exact_version(body.get("expected_version")),
            reason=_note(body),
        )
        return self._answer(outcome)

    def _history(self) -> Response:
        self._require_admin()
        limit = _int_arg("limit", 50, 1, bodies.MAX_HISTORY)
        filters: dict[str, Any] = {}
        if request.args.get("before_id") is not None:
            filters["before_id"] = _int_arg("before_id", 0, 0, bodies.MAX_EVENT_ID)
        kinds = validate_kinds(tuple(k for k in request.args.getlist("kind") if k))
        if kinds:
            filters["kinds"] = kinds
        if request.args.get("activation_id"):
            filters["activation_id"] = request.args["activation_id"]
        offset = _int_arg("offset", 0, 0, bodies.MAX_EVENT_ID)
        return json_response(self.service.history_page(limit, offset, **filters).to_dict())

    def _sessions(self) -> Response:
        self._require_admin()
        sample = _int_arg("sample", 10, 0, bodies.MAX_SAMPLE)
        return json_response(self._manager().get_active_non_admin_sessions(sample=sample).to_dict())

    def _invalidate(self) -> Response:
        who = self._write_guard()
        body = json_body(request, bodies.INVALIDATE)
        self._manager()
        outcome = invalidate_sessions(
            self.service,
            self._actor(who),
            invalidate=self._invalidator(),
            wait=_wait(body),
            reason=_note(body),
        )
        return self._answer(outcome)

    def _login_block(self) -> Response:
        who = self._write_guard()
        body = json_body(request, bodies.LOGIN_BLOCK)
        if "blocked" not in body:
            raise ApiError(400, "validation_error", "blocked is required", field="blocked")
        self._manager()
        outcome = set_login_block(
            self.service, self._actor(who), bool(body["blocked"]), reason=_note(body)
        )
        return self._answer(outcome)

    def _bypass_link(self) -> Response:
        who = self._write_guard()
        body = json_body(request, bodies.BYPASS_LINK)
        config = self.web.config
        ttl = config.bypass_link_ttl if body.get("ttl") is None else body["ttl"]
        # Built from MAINTENANCE_BASE_URL only (400 naming it when unset), never from Host;
        # the link dies after exactly ``ttl`` seconds, the lifetime it carries.
        outcome = bypass_link(
            self.service,
            self._actor(who),
            ttl=ttl,
            secret=config.secret_key,
            base_url=config.base_url,
        )
        return self._answer(outcome)

    def _emergency(self) -> Response:
        """POST: declare an emergency (the admin panel's emergency control posts here)."""
        who = self._write_guard()
        body = json_body(request, bodies.EMERGENCY)
        actor = who.username or "admin"
        # An emergency is an enable request in EMERGENCY mode: the same reason,
        # duration and wait rules.
        fields = {k: body.get(k) for k in ("reason", "duration", "critical_admin_only", "wait")}
        req = EnableRequest.from_json(
            {**fields, "mode": "emergency"}, actor, operations=self.service.operations
        )
        grace, kill = body.get("grace_period"), body.get("kill_after")
        outcome = declare(
            self.service,
            self._actor(who),
            req.reason,
            grace=DEFAULT_GRACE if grace is None else grace,
            kill_after=DEFAULT_KILL_AFTER if kill is None else kill,
            trigger="api",
            duration=req.seconds,
            critical_admin_only=req.critical_admin_only,
            wait=req.wait,
            invalidate=self._invalidator(),
        )
        return self._answer(outcome)

    def _emergency_progress(self) -> Response:
        """GET: where the current emergency stands."""
        self._require_admin()
        return json_response(controller_for(self.service).emergency_progress().to_dict())

    def _emergency_off(self) -> Response:
        """POST: lift the emergency after its checks (409 with the problems otherwise)."""
        who = self._write_guard()
        body = json_body(request, bodies.EMERGENCY_OFF)
        try:
            outcome = lift(
                self.service,
                self._actor(who),
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
        return self._answer(outcome)

    def _critical_only(self) -> Response:
        """POST: during an emergency, only critical administrators get through from now on
        (409 when no emergency is active)."""
        who = self._write_guard()
        body = json_body(request, bodies.CRITICAL_ONLY)
        return self._answer(critical_only(self.service, self._actor(who), wait=_wait(body)))

    def blueprint(self, name: str = "control") -> Blueprint:
        """The admin routes (mounted under the API prefix by ``api_blueprint``)."""
        bp = Blueprint(name, __name__)
        for rule, endpoint, view, methods in ROUTES:
            bp.add_url_rule(rule, endpoint, getattr(self, view), methods=list(methods))
        return bp
