"""``MaintenanceSessionManager``: log non-admins out and keep them out, for Flask-Session's
Redis server-side sessions and for Flask's signed cookie sessions alike.

* Server-side sessions are found through a role index kept at login (and at most
  once a minute after), so invalidating 100k of them never reads a session.
* Cookie sessions carry the epoch they were issued in; invalidation bumps the
  epoch, and a non-admin session from an older epoch is cleared on its next request.
* While logins are blocked, a logged-in non-admin is logged out on their next request.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from flask import (
    Flask,
    Response,
    after_this_request,
    current_app,
    g,
    has_request_context,
    request,
    session,
)

from ..commands import Actor
from ..commands.login_block import set_login_block
from ..domain.modes import MaintenanceMode, OperationType
from ..domain.status import MaintenanceStatus
from ..redisconn import REDIS_ERRORS
from ..session_index import COOKIE_MEMBER, ActiveSessions, SessionIndex, same_server
from ..session_invalidation import (
    Cleanup,
    InvalidationResult,
    current_epoch,
    invalidate_non_admin,
)
from . import identity as web_identity
from .identity import WebIdentity, raw_session
from .responses import app_response, build_response

if TYPE_CHECKING:
    import redis

    from ..fencing import ActivationResult
    from ..service import EnhancedMaintenanceModeService
    from .config import WebConfig
    from .state import WebState

log = logging.getLogger("maintenance.web.sessions")

#: Keys this module keeps in every logged-in session.
EPOCH_KEY = "_maintenance_epoch"
SEEN_KEY = "_maintenance_seen"
SID_KEY = "_maintenance_sid"
#: Counting members of turned-away sessions that were never indexed (``_stale_cookie_member``).
STALE_COOKIE_MEMBER = "~stale:"
#: Cookie set when a user is turned away: why (shown once by the next page, then removed;
#: a cookie of its own, so no session -- server-side or not -- is left behind).
SIGNED_OUT_COOKIE = "maintenance_signed_out"
#: Set on ``g`` once a page of this request showed the notice.
SIGNED_OUT_SAID = "maintenance_signed_out_said"
#: Set when a page told the user they were signed out (for 10 minutes: told once).
SIGNED_OUT_TOLD = "maintenance_signed_out_told"
#: Its values: the reasons ``turn_away`` is given.
SIGNED_OUT_REASONS = ("invalidated", "logins are blocked", "critical-only lockdown")
_G_INDEX = "_maintenance_index_scheduled"
_LOGIN_KEY = "_user_id"  # Flask-Login's marker of a logged-in session
_EPOCH_RETRY = 5.0


class MaintenanceSessionManager:
    """Invalidate non-admin sessions, block non-admin logins, report active sessions.

    Built by ``MaintenanceModeMiddleware.init_app`` for an app (``ext.sessions``,
    bound to that app's ``WebState``); ``MaintenanceSessionManager(service)``
    without an app works from the CLI or a worker (index, epoch and server-side
    keys when the web app registered that its sessions share the control plane's
    Redis).
    """

    def __init__(
        self,
        service: EnhancedMaintenanceModeService,
        *,
        web: WebState | None = None,
        store_client: redis.Redis | None = None,
    ) -> None:
        self.service = service
        self.web = web
        self.index = SessionIndex.of(service, store_client=store_client)
        self.epoch = 0
        self._epoch_known = False
        self._epoch_tried = 0.0
        self._store_checked = False
        self._app: Flask | None = None

    # -- wiring ------------------------------------------------------------------
    def init_app(self, app: Flask, *, hooks: bool = True) -> None:
        """Follow the epoch and, unless the middleware runs ``check_request`` from its own
        hook (``hooks=False``), install a ``before_request`` hook for the session checks."""
        self._app = app
        self.service.cache.add_listener(self._on_status)
        self._load_epoch()
        if hooks:
            app.before_request(self._before_request)

    def _on_status(self, status: MaintenanceStatus) -> None:
        # Runs in the cache thread before the node acknowledges the version, so no I/O
        # here: the epoch travels with the status, and a background read covers
        # statuses that dropped it (a later enable replaces ``extra``).
        carried = int(status.extra.get("session_epoch") or 0)
        if carried > self.epoch:
            self.epoch = carried
        self._refresh_epoch_soon()

    def _refresh_epoch_soon(self) -> None:
        self._epoch_tried = time.monotonic()
        threading.Thread(target=self._load_epoch, name="maintenance-epoch", daemon=True).start()

    def _load_epoch(self) -> None:
        self._epoch_tried = time.monotonic()
        try:
            value = current_epoch(self.index, self.service.events)
        except Exception as exc:  # Redis or SQL down: keep what we know, retry later
            log.debug("session epoch not readable yet: %s", exc)
            return
        self.epoch = max(self.epoch, value)
        self._epoch_known = True

    @property
    def _config(self) -> WebConfig | None:
        return self.web.config if self.web is not None else None

    # -- identity ----------------------------------------------------------------
    def identity(self) -> WebIdentity:
        """The current request's identity (the app's rules when bound to one)."""
        if self.web is not None:
            return self.web.identity()
        return web_identity.ANONYMOUS

    def identity_of(self, user: Any) -> WebIdentity:
        """Identity of an arbitrary user object (e.g. the one about to log in)."""
        if self.web is not None:
            return self.web.identities.identity_of(user)
        roles = self.service.roles
        return web_identity.build_identity(
            user,
            is_admin=roles.is_admin(user),
            is_critical_admin=roles.is_critical_admin(user),
            via="custom",
        )

    # -- request hooks -----------------------------------------------------------
    def _before_request(self) -> None:
        # Only used when the gate does not run (it calls check_request itself).
        cache = self.service.cache
        if not cache.started:
            cache.start()
        config = self._config
        if config is not None:
            self.check_request(config, cache.status)

    def check_request(self, config: WebConfig, status: MaintenanceStatus, sess: Any = None) -> None:
        """Per request, before the gate: turn stale or blocked non-admin sessions away and
        schedule the index update of logged-in sessions that need one.

        ``sess`` is this request's session when the caller already peeked at it
        (default: ``raw_session()``). An anonymous request costs one peek at the
        session, without marking it accessed (so responses do not gain
        ``Vary: Cookie``) and without network.
        """
        if sess is None:
            sess = raw_session()
        if not sess or not self._logged_in(sess, config):
            return
        epoch = self.epoch
        if not self._epoch_known and time.monotonic() - self._epoch_tried > _EPOCH_RETRY:
            self._refresh_epoch_soon()  # Redis was down when we started: retry off-request
        stamp = _peek(sess, EPOCH_KEY)
        if epoch and int(stamp or 0) < epoch:
            if not self.identity().is_admin:
                self.turn_away("invalidated")
                return
            sess[EPOCH_KEY] = stamp = epoch  # admins keep their sessions
        if _lockdown(status) and not self.identity().is_critical_admin:
            # A critical-only lockdown ends every other session, ordinary admins' too.
            self.turn_away("critical-only lockdown", status)
            return
        if (
            config.logout_non_admins
            and status.is_active
            and status.login_blocked
            and not status.test_mode
            and not self.identity().is_admin
        ):
            self.turn_away("logins are blocked", status)
            return
        if config.session_index and (
            stamp is None
            or time.time() - float(_peek(sess, SEEN_KEY) or 0) >= config.touch_interval
        ):
            self.schedule_index()

    def schedule_index(self) -> None:
        """Record this request's session in the index once the view has run (logins call it)."""
        if not g.get(_G_INDEX):
            setattr(g, _G_INDEX, True)
            after_this_request(self._index_response)

    @staticmethod
    def _logged_in(sess: Any, config: WebConfig) -> bool:
        # dict.get, as _peek: SessionMixin.get would mark the session accessed.
        return dict.get(sess, _LOGIN_KEY) is not None or dict.get(sess, config.role_key) is not None

    def turn_away(self, why: str, status: MaintenanceStatus | None = None) -> None:
        """Log the current session out (server-side data removed, cookie cleared).

        With ``status`` (a logout the invalidation sweep did not count: logins blocked,
        a lockdown) it is added to the activation's invalidated-sessions count, so the
        status counts every session maintenance ended, lazily ended ones included."""
        who = self.identity()
        web_identity.remember_former(who)
        member = self._member(raw_session())
        session.clear()
        if hasattr(current_app, "login_manager"):
            with contextlib.suppress(ImportError):
                from flask_login import logout_user

                logout_user()
        web_identity.forget()
        if why in SIGNED_OUT_REASONS:  # this or the next page tells them (``banner``)
            code = str(SIGNED_OUT_REASONS.index(why))
            setattr(g, SIGNED_OUT_COOKIE, code)
            after_this_request(lambda r: _set_signed_out(r, code))
        with contextlib.suppress(*REDIS_ERRORS):
            if member is not None:
                self.index.forget(member)
            if status is not None and status.activation_id:
                counted = member or _stale_cookie_member()
                self.index.count_turned_away(status.activation_id, counted)
        log.info("session of %s logged out (%s)", who.username, why)

    def _index_response(self, response: Response) -> Response:
        config = self._config
        sess = raw_session()
        if config is None or not sess or not self._logged_in(sess, config):
            return response
        try:
            self._index_session(sess)
        except REDIS_ERRORS as exc:  # the index is best effort; never fail a response
            log.debug("session index not updated: %s", exc)
        return response

    def _index_session(self, sess: Any) -> None:
        now = time.time()
        if _peek(sess, EPOCH_KEY) is None:
            sess[EPOCH_KEY] = self.epoch
        web_identity.forget()  # the view may just have logged someone in
        who = self.identity()
        if self._member(sess) is None:
            sess[SID_KEY] = secrets.token_urlsafe(12)
        member = self._member(sess)
        sess[SEEN_KEY] = int(now)
        self.index.touch(str(member), who.username, who.is_admin, now=now)

    def _member(self, sess: Any) -> str | None:
        sid = getattr(sess, "sid", None)
        interface = self._server_side()
        if sid and interface is not None:
            return f"{interface.key_prefix}{sid}"
        cookie_id = _peek(sess, SID_KEY)
        return f"{COOKIE_MEMBER}{cookie_id}" if cookie_id else None

    def _server_side(self) -> Any | None:
        """Flask-Session's Redis interface of the app, registered once for other processes."""
        app = self._app
        interface = getattr(app, "session_interface", None) if app is not None else None
        client = getattr(interface, "client", None)
        if interface is None or client is None or not hasattr(interface, "key_prefix"):
            return None
        if not self._store_checked:
            self._store_checked = True
            if self.index.store_client is None:
                self.index.store_client = client
            with contextlib.suppress(*REDIS_ERRORS):
                self.index.register_store(
                    interface.key_prefix, same_server(client, self.index.redis)
                )
        return interface

    # -- operations ----------------------------------------------------------------
    def invalidate_non_admin_sessions(
        self,
        actor: str | None = None,
        *,
        wait: float | None = None,
        reason: str | None = None,
        cleanup: Cleanup = "auto",
    ) -> InvalidationResult:
        """Log every non-admin out now: each is refused on their next request, on every
        node, once this returns; their server-side keys are deleted inline or, for many
        sessions, in the background (``cleanup``, see ``invalidate_non_admin``).

        Returns counts and timing; the new epoch is applied by every live web
        node before this returns (fenced by ``wait``, default from settings).
        """
        if self._app is not None:
            self._server_side()
        result = invalidate_non_admin(
            self.service, self.index, actor or "system", wait=wait, reason=reason, cleanup=cleanup
        )
        self.epoch = max(self.epoch, result.epoch)
        self._epoch_known = True
        return result

    def prevent_non_admin_login(
        self, actor: str | None = None, reason: str | None = None
    ) -> ActivationResult:
        """Refuse non-admin logins (the login helper answers them with the maintenance page)."""
        who = Actor.operator(actor or "system", "python")
        return set_login_block(self.service, who, True, reason=reason).value

    def allow_non_admin_login(
        self, actor: str | None = None, reason: str | None = None
    ) -> ActivationResult:
        """Let non-admins log in again."""
        who = Actor.operator(actor or "system", "python")
        return set_login_block(self.service, who, False, reason=reason).value

    def check_login(self, user: Any) -> Response | None:
        """The login helper: call it in your login view once the credentials are good.

        Returns None when ``user`` may log in, else the 503 maintenance response
        to return instead (the refusal is counted as a blocked login attempt).
        In TEST mode nothing is refused; a non-admin login is recorded as would-block.
        """
        status = self.service.status
        who = self.identity_of(user)
        if _login_allowed(status, who):
            if status.is_active and status.test_mode and not who.is_admin:
                self._record(who, would_block=True)
            if has_request_context():
                self.schedule_index()  # index the session the view is about to log in
            return None
        self._record(who, would_block=False)
        if self.web is not None:
            return app_response(
                self.web.config,
                status,
                OperationType.AUTHENTICATION,
                operations=self.web.service.operations,
            )
        return build_response(
            request, status, OperationType.AUTHENTICATION, operations=self.service.operations
        )

    def _record(self, who: WebIdentity, *, would_block: bool) -> None:
        endpoint = method = None
        if has_request_context():
            endpoint, method = request.endpoint or request.path, request.method
        self.service.record_blocked_attempt(
            OperationType.AUTHENTICATION,
            who.username,
            endpoint=endpoint,
            method=method,
            channel="login",
            would_block=would_block,
        )

    def get_active_non_admin_sessions(
        self, sample: int = 10, window: float | None = None
    ) -> ActiveSessions:
        """Logged-in non-admin sessions seen within ``window`` seconds: count and a sample
        of ``{"user", "last_seen", "kind"}`` (newest first)."""
        if window is None:
            config = self._config
            window = config.active_window if config else 1800
        return self.index.active_non_admin(window=window, sample=sample)


def _peek(sess: Any, key: str) -> Any:
    # dict.get: SessionMixin.get would mark the session accessed (Vary: Cookie).
    return dict.get(sess, key)


def _login_allowed(status: MaintenanceStatus, who: WebIdentity) -> bool:
    if _lockdown(status):
        return who.is_critical_admin
    if status.login_blocked and not status.test_mode:
        return who.is_admin
    return True


def _lockdown(status: MaintenanceStatus) -> bool:
    return bool(
        status.is_active and status.mode is MaintenanceMode.EMERGENCY and status.critical_admin_only
    )


def _set_signed_out(response: Response, code: str) -> Response:
    if g.get(SIGNED_OUT_SAID):
        return response  # this very response told them
    response.set_cookie(SIGNED_OUT_COOKIE, code, max_age=600, httponly=True, samesite="Lax")
    return response


def _stale_cookie_member() -> str | None:
    """Who a session never indexed is, for counting it once: its cookie, hashed. A login
    view that does not call ``schedule_index`` leaves a session without an index member
    until its next request; turned away before that (its page and its favicon, say),
    the same cookie always names the same session."""
    interface = current_app.session_interface
    name = interface.get_cookie_name(current_app)
    raw = request.cookies.get(name)
    if not raw:
        return None
    return f"{STALE_COOKIE_MEMBER}{hashlib.sha256(raw.encode()).hexdigest()[:32]}"
