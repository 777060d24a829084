"""The request gate ``MaintenanceModeMiddleware`` installs on an app (``install_gate``).

A request it lets through costs one read of this process's status cache and a peek
at the session (no network). Only while maintenance is on (or the process fails
closed) does it classify the endpoint, find out who is asking and let the
extension's ``is_allowed_operation`` decide, answering a refusal with a 503.

Where it runs: it is registered as a ``before_request`` function, in the order hooks
were added. When nothing runs before it (no URL value preprocessor, no app-wide
``before_request`` function added earlier: the usual case), it is taken out of
Flask's hook list at the first request and run from the app's ``preprocess_request``
instead -- the same place in the request (after the URL is matched and the session
opened, inside Flask's error handling, before every other hook) without Flask's
per-hook dispatch, and with the common case (maintenance off, no session) decided
inline. Otherwise it stays a ``before_request`` function where it was added.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, after_this_request, current_app, request

from ..domain.modes import OperationType
from ..domain.policy import Decision, decide
from .allowlist import allowlisted_identity
from .bypass_cookie import bypass_identity, read_cookie
from .identity import WebIdentity, current_request_context, raw_session
from .responses import app_response

if TYPE_CHECKING:
    from ..domain.status import MaintenanceStatus
    from ..service import EnhancedMaintenanceModeService
    from .state import WebState

BYPASS_ENDPOINT = "maintenance_bypass"
METRICS_ENDPOINT = "maintenance_metrics"
API_BLUEPRINT = "maintenance_api"
_OWN_ENDPOINTS = frozenset({BYPASS_ENDPOINT, METRICS_ENDPOINT})
_BLOCK = Decision.BLOCK
#: The admin bypass entered for the current request (left once its response is made).
_bypass_manager: ContextVar[Any] = ContextVar("maintenance_web_bypass", default=None)
#: Ids of the bypasses entered and not yet left, any thread: while empty, no request
#: can have one left over (a set: ``add``/``discard`` are atomic).
_open_bypasses: set[int] = set()


def install_gate(app: Flask, state: WebState) -> None:
    """Put the gate on ``app``: a ``before_request`` function, taken out of Flask's
    hook list and run from ``preprocess_request`` when nothing runs before it."""
    hook = gate_hook(state)
    app.before_request(hook)
    if "preprocess_request" in vars(app):  # wrapped already (a second extension)
        return
    original = app.preprocess_request
    cache = state.service.cache
    fail_closed = bool(state.service.settings.fail_closed)
    failing_closed = state.service.failing_closed
    current_context = current_request_context
    lock = threading.Lock()

    def preprocess_request() -> Any:
        # The common case inline: maintenance off, not failing closed, no session to
        # check, no bypass to leave -- one cache read and one peek, then Flask's own.
        if (
            cache.status.is_active
            or _open_bypasses
            or not cache.started
            or (fail_closed and failing_closed())
        ):
            answer = hook()
            if answer is not None:
                return answer
            return original()
        slots = current_context().__dict__
        if slots.get("_session") or slots.get("session"):
            answer = hook()
            if answer is not None:
                return answer
        return original()

    def first_request() -> Any:
        with lock:
            if vars(app).get("preprocess_request") is first_request:
                funcs = app.before_request_funcs.get(None, [])
                if funcs and funcs[0] is hook and not any(app.url_value_preprocessors.values()):
                    # A new list: Flask may be iterating the current one.
                    app.before_request_funcs[None] = [f for f in funcs if f is not hook]
                    app.preprocess_request = preprocess_request  # type: ignore[method-assign]
                else:  # something runs before the gate: it stays where it was added
                    del app.preprocess_request
        return app.preprocess_request()

    app.preprocess_request = first_request  # type: ignore[method-assign]


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
        if status.test_mode:
            return _timed_decide(state, status)
        return _decide(state, status)

    return maintenance_gate


def _timed_decide(state: WebState, status: MaintenanceStatus) -> Response | None:
    # A rehearsal measures this node's gate: the decision as requests meet it.
    start = perf_counter_ns()
    try:
        return _decide(state, status)
    finally:
        state.service.gate_timings.add(status.activation_id, "http", perf_counter_ns() - start)


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
    allowed = None
    if not who.is_admin:
        allowed = config.allowlist.match(current_app, req)
        if allowed is not None:
            who = allowlisted_identity(*allowed)
    if not who.is_admin and config.bypass_cookie in req.cookies:
        actor = read_cookie(req, config, status.activation_id if status.is_active else None)
        if actor is not None:
            who = bypass_identity(actor)
    if who.is_admin:
        _enter_bypass(service, who)
    if state.extension.is_allowed_operation(op, who, record=True):
        if allowed is not None and state.allowlisted is not None and decide(status, op) is _BLOCK:
            state.allowlisted.count(status.activation_id, *allowed)  # the allowlist let it in
        return None
    if not status.is_active:
        # Failing closed (MAINTENANCE_FAIL_CLOSED, Redis and SQL both unreachable):
        # say why rather than "operating normally".
        status = service.fail_closed_status(status)
    return app_response(config, status, op, operations=service.operations)


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
        _open_bypasses.add(id(manager))
        after_this_request(_leave_after)


def _leave_after(response: Response) -> Response:
    leave_bypass()
    return response


def leave_bypass() -> None:
    """Leave the admin bypass this thread entered for a request, if any."""
    manager = _bypass_manager.get()
    if manager is not None:
        _bypass_manager.set(None)
        _open_bypasses.discard(id(manager))
        with contextlib.suppress(ValueError, RuntimeError):
            manager.__exit__(None, None, None)
