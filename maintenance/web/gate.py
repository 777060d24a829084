"""The request gate: the ``before_request`` hook ``MaintenanceModeMiddleware`` installs.

A request it lets through costs one read of this process's status cache and a peek
at the session (no network). Only while maintenance is on (or the process fails
closed) does it classify the endpoint, find out who is asking and let the
extension's ``is_allowed_operation`` decide, answering a refusal with a 503.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from flask import Response, after_this_request, request

from ..domain.modes import OperationType
from .bypass_cookie import bypass_identity, read_cookie
from .identity import WebIdentity, raw_session
from .responses import app_response

if TYPE_CHECKING:
    from ..domain.status import MaintenanceStatus
    from ..service import EnhancedMaintenanceModeService
    from .state import WebState

BYPASS_ENDPOINT = "maintenance_bypass"
METRICS_ENDPOINT = "maintenance_metrics"
API_BLUEPRINT = "maintenance_api"
_OWN_ENDPOINTS = frozenset({BYPASS_ENDPOINT, METRICS_ENDPOINT})
#: The admin bypass entered for the current request (left once its response is made).
_bypass_manager: ContextVar[Any] = ContextVar("maintenance_web_bypass", default=None)


def gate_hook(state: WebState) -> Callable[[], Response | None]:
    """The ``before_request`` function of one app."""
    config = state.config
    failing_closed = state.service.failing_closed
    cache = state.service.cache  # the same object for the life of the process, forks too
    assert state.sessions is not None
    check_sessions = state.sessions.check_request

    def maintenance_gate() -> Response | None:
        # The whole per-request cost while maintenance is off: a cache read
        # and a peek at the session (see identity.raw_session). No network.
        if _bypass_manager.get() is not None:
            leave_bypass()  # left over by a request that died half-way
        if not cache.started:
            cache.start()
        status = cache.status
        sess = raw_session()
        if sess:
            check_sessions(config, status, sess)
        if not status.is_active and not failing_closed():
            return None
        return _decide(state, status)

    return maintenance_gate


def _decide(state: WebState, status: MaintenanceStatus) -> Response | None:
    req = request._get_current_object()  # type: ignore[attr-defined]
    rule = req.url_rule
    if rule is None:  # no route: let Flask answer 404/405, nothing would run
        return None
    endpoint = req.endpoint or ""
    config = state.config
    if (
        endpoint in _OWN_ENDPOINTS
        or endpoint.startswith(API_BLUEPRINT + ".")
        or config.is_exempt(endpoint, req.path)
    ):
        return None
    service = state.service
    op = service.classifier.classify_operation(endpoint, req.method, path=rule.rule)
    if op is OperationType.STATUS_CHECK:
        return None
    who = state.identity()
    if not who.is_admin and config.bypass_cookie in req.cookies:
        actor = read_cookie(req, config)
        if actor is not None:
            who = bypass_identity(actor)
    if who.is_admin:
        _enter_bypass(service, who)
    if state.extension.is_allowed_operation(op, who, record=True):
        return None
    if not status.is_active:
        # Failing closed (MAINTENANCE_FAIL_CLOSED, Redis and SQL both unreachable):
        # say why rather than "operating normally".
        status = service.fail_closed_status(status)
    return app_response(config, status, op)


def _enter_bypass(service: EnhancedMaintenanceModeService, who: WebIdentity) -> None:
    # Celery publishes made while handling an admin request pass the publish gate.
    # It is left once the response is made (after_this_request runs on error
    # responses too); should a request die before that, the next request on this
    # thread leaves it before anything else runs. No teardown hook: that would
    # cost every request, and only admin requests during maintenance need this.
    if _bypass_manager.get() is None:
        manager = service.bypass(who)
        manager.__enter__()
        _bypass_manager.set(manager)
        after_this_request(_leave_after)


def _leave_after(response: Response) -> Response:
    leave_bypass()
    return response


def leave_bypass() -> None:
    """Leave the admin bypass this thread entered for a request, if any."""
    manager = _bypass_manager.get()
    if manager is not None:
        _bypass_manager.set(None)
        with contextlib.suppress(ValueError, RuntimeError):
            manager.__exit__(None, None, None)
