"""``MaintenanceModeMiddleware``: the Flask extension. ``init_app`` wires one app (its
``WebState``, the request gate of ``gate``, the bypass route, the APIs, metrics, Jinja
helpers and the CLI); its public methods answer who is asking, whether an operation
may run now (the gate's one decision), and what a refused request gets.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    has_app_context,
    request,
)

from ..domain.modes import OperationType
from ..domain.policy import Decision
from ..domain.status import MaintenanceStatus
from ..errors import OperationBlocked
from ..factory import build_service, default_service
from ..roles import user_label
from ..service import EnhancedMaintenanceModeService
from ..settings import Settings
from . import identity as web_identity
from .allowlist import AllowlistCounter
from .bypass_cookie import redeem_view
from .config import WebConfig, apply_defaults
from .gate import API_BLUEPRINT, BYPASS_ENDPOINT, METRICS_ENDPOINT, install_gate
from .identity import IdentityResolver, WebIdentity
from .responses import app_response
from .session_manager import MaintenanceSessionManager
from .state import KEY, WebState, state_of

blocked_log = logging.getLogger("maintenance.web.blocked")

_MISSING: Any = object()


def resolve_service(app: Flask) -> EnhancedMaintenanceModeService:
    """``MAINTENANCE_SERVICE``, else one built from ``MAINTENANCE_SETTINGS`` (overrides of
    ``Settings.from_env``), else this process's shared default service."""
    configured = app.config["MAINTENANCE_SERVICE"]
    if configured is not None:
        return configured
    overrides = app.config["MAINTENANCE_SETTINGS"]
    if overrides:
        return build_service(Settings.from_env(**dict(overrides)), kind="web")
    return default_service(kind="web")


def register_web_node(app: Flask) -> None:
    """Make this process a registered ``web`` node of ``app``'s control plane now, and
    again in every worker a server forks from it (so fenced enables wait for idle web
    processes too, not only for those that served a request). ``init_app`` calls it
    unless ``MAINTENANCE_REGISTER_ON_START`` is false; call it from a server hook
    (uWSGI ``@postfork``, gunicorn ``post_worker_init``) where ``fork`` bypasses
    Python's at-fork hooks."""
    service = state_of(app).service
    service.cache.start_after_fork = True
    service.start()


class MaintenanceModeMiddleware:
    """Maintenance mode for a Flask app: request gate, 503 pages, bypass, sessions, API.

    ``MaintenanceModeMiddleware(app, service)`` or, with an app factory,
    ``ext = MaintenanceModeMiddleware(service=service)`` then ``ext.init_app(app)``.
    Each app's state (service, settings, sessions, API) is a ``WebState`` in
    ``app.extensions["maintenance"]``, so one extension may serve several apps.
    Settings are read only from ``app.config`` (every key gets its default via
    ``setdefault``):

    ``MAINTENANCE_SERVICE``              a built service (default: ``MAINTENANCE_SETTINGS`` / env)
    ``MAINTENANCE_SETTINGS``             dict of ``Settings`` overrides to build the service from
    ``MAINTENANCE_HOOK_ENABLED``         install the ``before_request`` gate (True)
    ``MAINTENANCE_EXEMPT_ENDPOINTS``     endpoint globs never blocked (``()``)
    ``MAINTENANCE_EXEMPT_PATHS``         path globs never blocked (``()``)
    ``MAINTENANCE_ALLOWED_IPS``          IPs/CIDR networks let through like an admin (``()``)
    ``MAINTENANCE_TRUSTED_PROXIES``      peers whose ``X-Forwarded-For`` is believed (``()``)
    ``MAINTENANCE_ALLOWED_PATHS``        path globs let through like an admin (``()``);
                                         views: ``@maintenance_exempt``
    ``MAINTENANCE_CURRENT_USER``         ``() -> user`` (default: Flask-Login, then session role)
    ``MAINTENANCE_IS_ADMIN``             ``(user) -> bool`` (default: ``service.roles``)
    ``MAINTENANCE_IS_CRITICAL_ADMIN``    ``(user) -> bool`` (default: ``service.roles``)
    ``MAINTENANCE_SESSION_ROLE_KEY``     session key holding a plain role (``"role"``)
    ``MAINTENANCE_SESSION_USER_KEY``     session key holding the user name (``"username"``)
    ``MAINTENANCE_JSON_PATHS``           path prefixes answered in JSON on ``*/*`` (``("/api/",)``)
    ``MAINTENANCE_TEMPLATE``             template of the 503 page (``maintenance/blocked.html``)
    ``MAINTENANCE_MESSAGES``             ``{operation|"default": template}`` message overrides
    ``MAINTENANCE_STATUS_CODE``          status of a refusal (503)
    ``MAINTENANCE_REDIRECT_URL``         send refused browsers here instead (None)
    ``MAINTENANCE_STATIC_PAGE``          file kept current with a pre-rendered page (None)
    ``MAINTENANCE_HANDLE_BLOCKED``       answer ``OperationBlocked`` raised in a view with the 503
                                         (``handle_operation_blocked``; True)
    ``MAINTENANCE_SECRET_KEY``           signs bypass links/cookies (default: settings, SECRET_KEY)
    ``MAINTENANCE_BYPASS_PATH``          route redeeming links (``/_maintenance/bypass/<token>``)
    ``MAINTENANCE_BYPASS_LINK_TTL``      default lifetime of a bypass link (3600; 60-86400 s)
    ``MAINTENANCE_BASE_URL``             the site's public URL for bypass links (default: settings)
    ``MAINTENANCE_BYPASS_COOKIE_NAME``   bypass cookie name (``maintenance_bypass``)
    ``MAINTENANCE_BYPASS_COOKIE_MAX_AGE`` seconds a bypass cookie lasts, within its window (43200)
    ``MAINTENANCE_BYPASS_COOKIE_SECURE`` force the cookie's Secure flag (None: when HTTPS)
    ``MAINTENANCE_SESSION_INDEX``        keep the role index of logged-in sessions (True)
    ``MAINTENANCE_SESSION_TOUCH_INTERVAL`` seconds between index updates per session (60)
    ``MAINTENANCE_SESSION_ACTIVE_WINDOW`` a session seen this recently is active (1800)
    ``MAINTENANCE_LOGOUT_NON_ADMINS``    log non-admins out while logins are blocked (True)
    ``MAINTENANCE_INVALIDATE_ON_ENABLE`` API enable invalidates non-admin sessions (True)
    ``MAINTENANCE_API_ENABLED``          register the status API blueprints (True)
    ``MAINTENANCE_API_PREFIX``           their URL prefix (``/api/maintenance``)
    ``MAINTENANCE_TRUSTED_ORIGINS``      extra origins allowed to POST to the admin API (``()``)
    ``MAINTENANCE_SSE_HEARTBEAT``        seconds between stream heartbeats (15)
    ``MAINTENANCE_SSE_MAX_SECONDS``      a stream closes after this long; clients resume (300)
    ``MAINTENANCE_SSE_RETRY_MS``         reconnect delay suggested to clients (2000)
    ``MAINTENANCE_SSE_MAX_STREAMS``      user streams per process, then "poll" (auto)
    ``MAINTENANCE_SSE_MAX_ADMIN_STREAMS`` administrator streams per process (auto)
    ``MAINTENANCE_POLL_MIN_SECONDS``     the 503 page's first status poll (5)
    ``MAINTENANCE_POLL_MAX_SECONDS``     its longest interval between polls (60)
    ``MAINTENANCE_METRICS_PATH``         Prometheus endpoint (``/metrics``; None: off)
    ``MAINTENANCE_CLI``                  mount ``flask maintenance`` (True)
    ``MAINTENANCE_REGISTER_ON_START``    register as a web node at ``init_app`` and in
                                         every forked server worker (True)

    Admin detection is pluggable: configure ``MAINTENANCE_IS_ADMIN`` or subclass
    and override ``is_admin_user`` / ``is_critical_admin_user`` / ``current_user``.
    """

    def __init__(
        self, app: Flask | None = None, service: EnhancedMaintenanceModeService | None = None
    ) -> None:
        self._service = service
        # Where init_app ran, so code outside an app context finds a lone app's state.
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    # -- wiring ------------------------------------------------------------------
    def init_app(self, app: Flask) -> None:
        """Register hooks, routes, the API blueprints, metrics, Jinja globals and the CLI."""
        apply_defaults(app)
        service = self._service or resolve_service(app)
        config = WebConfig.from_app(app, service.settings.secret_key)
        state = WebState(
            extension=self,
            service=service,
            config=config,
            identities=self._identities(config, service),
        )
        app.extensions[KEY] = state
        self._apps.add(app)
        app.register_blueprint(
            Blueprint("maintenance_web", __name__, template_folder="templates"),
            name=f"maintenance_web_{id(self)}",
        )
        # Session checks run first (inside the gate hook), so a session turned away is
        # anonymous at the gate.
        state.allowlisted = AllowlistCounter(service)
        sessions = state.sessions = MaintenanceSessionManager(service, web=state)
        sessions.init_app(app, hooks=not config.hook_enabled)
        if config.hook_enabled:
            install_gate(app, state)
            service.declare_hook("http")
        if config.handle_blocked:
            # Refusals raised while a request runs (the Celery publish gate, the
            # transaction guard, check_operation) get the maintenance 503 too.
            app.register_error_handler(OperationBlocked, self.handle_operation_blocked)
        app.add_url_rule(
            config.bypass_path,
            endpoint=BYPASS_ENDPOINT,
            view_func=lambda token: redeem_view(service, config, token),
        )
        self._init_extras(app, state)
        if config.static_page:
            from .static_page import keep_current

            keep_current(app, state, config.static_page)
        if config.register_on_start:
            register_web_node(app)

    def _identities(
        self, config: WebConfig, service: EnhancedMaintenanceModeService
    ) -> IdentityResolver:
        # A subclass's own user lookup and admin checks win over the app's settings.
        cls, base = type(self), MaintenanceModeMiddleware
        return IdentityResolver(
            config,
            service.roles,
            current_user=self.current_user if cls.current_user is not base.current_user else None,
            is_admin=self.is_admin_user if cls.is_admin_user is not base.is_admin_user else None,
            is_critical_admin=self.is_critical_admin_user
            if cls.is_critical_admin_user is not base.is_critical_admin_user
            else None,
        )

    def _init_extras(self, app: Flask, state: WebState) -> None:
        from .banner import register_template_helpers
        from .host_csrf import leave_to_itself
        from .metrics import WebMetrics
        from .status_page import init_public

        config = state.config
        state.metrics = WebMetrics(state.service)
        if config.metrics_path:
            app.add_url_rule(
                config.metrics_path, endpoint=METRICS_ENDPOINT, view_func=state.metrics.view
            )
        if config.api_enabled:
            from .api import ControlAPI, MaintenanceStatusAPI, api_blueprint

            state.api = MaintenanceStatusAPI(state.service, web=state)
            state.control = ControlAPI(state)
            app.register_blueprint(
                api_blueprint(API_BLUEPRINT, state.api, state.control),
                url_prefix=config.api_prefix,
            )
            leave_to_itself(app, API_BLUEPRINT)  # the host's CSRF check skips the API
        init_public(app, state.service)
        state.service.notifier.start_delivery("web")
        register_template_helpers(app)
        if config.cli:
            from .cli import flask_command

            app.cli.add_command(flask_command(), "maintenance")

    # -- per-app state -------------------------------------------------------------
    def state(self, app: Flask | None = None) -> WebState:
        """This extension's state on ``app``: by default the current app's, or outside an
        app context the state of the only app it was set up on."""
        if app is None:
            if has_app_context():
                app = current_app._get_current_object()  # type: ignore[attr-defined]
            elif len(self._apps) == 1:
                app = next(iter(self._apps))
            else:
                raise RuntimeError(
                    "MaintenanceModeMiddleware serves several apps (or none yet): "
                    "use it inside an app context or pass the app"
                )
        assert app is not None
        return state_of(app)

    def config_for(self, app: Flask) -> WebConfig:
        """The ``MAINTENANCE_*`` settings ``init_app`` read for ``app``."""
        return self.state(app).config

    @property
    def config(self) -> WebConfig:
        """The settings of the current app."""
        return self.state().config

    @property
    def service(self) -> EnhancedMaintenanceModeService:
        """The service given to the extension, else the current (or only) app's."""
        if self._service is not None:
            return self._service
        return self.state().service

    @property
    def sessions(self) -> MaintenanceSessionManager | None:
        """The current (or only) app's ``MaintenanceSessionManager``."""
        return self.state().sessions

    @property
    def api(self) -> Any:
        """The current (or only) app's ``MaintenanceStatusAPI`` (None when it is off)."""
        return self.state().api

    @property
    def metrics(self) -> Any:
        """The current (or only) app's ``WebMetrics``."""
        return self.state().metrics

    # -- who is asking (rules in identity.IdentityResolver) ------------------------
    def current_user(self) -> Any:
        """The app's user for this request (``MAINTENANCE_CURRENT_USER``, Flask-Login,
        or a mapping built from the session role), or None when anonymous."""
        return web_identity.default_current_user(self.config)

    def is_admin_user(self, user: Any = _MISSING) -> bool:
        """Whether ``user`` (default: the current user) is an administrator."""
        if user is _MISSING:
            user = self.current_user()
        return user is not None and bool(self.state().identities.admin_check(user))

    def is_critical_admin_user(self, user: Any = _MISSING) -> bool:
        """Whether ``user`` (default: the current user) is an admin flagged critical."""
        if user is _MISSING:
            user = self.current_user()
        return user is not None and bool(self.state().identities.critical_check(user))

    def identity_of(self, user: Any) -> WebIdentity:
        """A ``WebIdentity`` for any user object (None: anonymous)."""
        return self.state().identities.identity_of(user)

    def identity(self) -> WebIdentity:
        """The current request's identity (resolved once per request)."""
        return self.state().identity()

    # -- public helpers ------------------------------------------------------------
    def is_allowed_operation(
        self, operation: OperationType | str, user: Any = _MISSING, *, record: bool = False
    ) -> bool:
        """Whether ``operation`` may run now for ``user`` (default: the current request's
        caller; a ``WebIdentity`` is taken as it is). The request gate decides here.

        ``record=True`` also counts a refusal, and in TEST mode what a real
        maintenance would have refused a non-admin (``log_blocked_attempt``).
        """
        state = self.state()
        if user is _MISSING:
            who = state.identity()
        elif isinstance(user, WebIdentity):
            who = user
        else:
            who = state.identities.identity_of(user)
        op = state.service.parse_operation(operation)
        decision = state.service.decide(op, who)
        if record and decision is Decision.BLOCK:
            self.log_blocked_attempt(op, who)
        elif record and decision is Decision.WOULD_BLOCK and not who.is_admin:
            # A real NORMAL maintenance would let admins through: not a would-block.
            self.log_blocked_attempt(op, who, would_block=True)
        return decision is not Decision.BLOCK

    def create_maintenance_response(
        self,
        operation: OperationType | str | None = None,
        status: MaintenanceStatus | None = None,
        *,
        code: int | None = None,
    ) -> Response:
        """The 503 (or the app's ``MAINTENANCE_STATUS_CODE``, or ``code``) for ``operation``
        (JSON or HTML by ``Accept``; browsers redirected when ``MAINTENANCE_REDIRECT_URL``
        is set), with ``Retry-After`` when the end is known and ``Cache-Control: no-store``."""
        state = self.state()
        service = state.service
        op = service.parse_operation(operation) if operation is not None else OperationType.UNKNOWN
        return app_response(
            state.config, status or service.status, op, code=code, operations=service.operations
        )

    def handle_operation_blocked(self, exc: OperationBlocked) -> Response:
        """The answer to ``OperationBlocked`` raised anywhere in a request: the maintenance
        503 for its operation (JSON or HTML by ``Accept``). Override in a subclass, set
        ``MAINTENANCE_HANDLE_BLOCKED = False``, or register the app's own
        ``errorhandler(OperationBlocked)`` after ``init_app`` to answer differently."""
        return self.create_maintenance_response(exc.operation, exc.status)

    def log_blocked_attempt(
        self, operation: OperationType | str, user: Any = None, *, would_block: bool = False
    ) -> None:
        """Count a refused (or TEST-mode would-be-refused) request: per-operation counters
        and per-minute rates in Redis (one pipelined write), a sampled row in SQL
        (written in the background), the process's Prometheus counters and a log line."""
        state = self.state()
        op = state.service.parse_operation(operation)
        who = user if user is not None else state.identity()
        if isinstance(who, WebIdentity) and not who.authenticated:
            who = web_identity.former() or who  # logged out by this very request
        label = who.username if isinstance(who, WebIdentity) else user_label(who)
        endpoint = request.endpoint or request.path
        state.service.record_blocked_attempt(
            op, label, endpoint=endpoint, method=request.method, would_block=would_block
        )
        if state.metrics is not None:
            state.metrics.count_request(op, would_block=would_block)
        blocked_log.info(
            "%s %s %s (%s) by %s",
            "would block" if would_block else "blocked",
            request.method,
            endpoint,
            op.value,
            label or "anonymous",
        )
