"""The ``MAINTENANCE_*`` Flask config keys, their defaults, and the per-app view of them."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask

from ..bypass_tokens import LINK_TTL, check_ttl
from .allowlist import Allowlist

#: Every config key the Flask side reads, with its default (``app.config.setdefault``).
DEFAULTS: dict[str, Any] = {
    # Which control plane to use.
    "MAINTENANCE_SERVICE": None,
    "MAINTENANCE_SETTINGS": None,
    # The request hook.
    "MAINTENANCE_HOOK_ENABLED": True,
    "MAINTENANCE_EXEMPT_ENDPOINTS": (),
    "MAINTENANCE_EXEMPT_PATHS": (),
    # Allowlists: let through like an admin (counted; see allowlist.py).
    "MAINTENANCE_ALLOWED_IPS": (),
    "MAINTENANCE_TRUSTED_PROXIES": (),
    "MAINTENANCE_ALLOWED_PATHS": (),
    # Who is asking.
    "MAINTENANCE_CURRENT_USER": None,
    "MAINTENANCE_IS_ADMIN": None,
    "MAINTENANCE_IS_CRITICAL_ADMIN": None,
    "MAINTENANCE_SESSION_ROLE_KEY": "role",
    "MAINTENANCE_SESSION_USER_KEY": "username",
    # Responses.
    "MAINTENANCE_JSON_PATHS": ("/api/",),
    "MAINTENANCE_TEMPLATE": "maintenance/blocked.html",
    "MAINTENANCE_MESSAGES": None,
    "MAINTENANCE_HANDLE_BLOCKED": True,
    "MAINTENANCE_STATUS_CODE": 503,
    "MAINTENANCE_REDIRECT_URL": None,
    "MAINTENANCE_STATIC_PAGE": None,
    # Bypass links and cookie.
    "MAINTENANCE_SECRET_KEY": None,
    "MAINTENANCE_BYPASS_PATH": "/_maintenance/bypass/<token>",
    "MAINTENANCE_BYPASS_LINK_TTL": LINK_TTL,
    "MAINTENANCE_BASE_URL": None,
    "MAINTENANCE_BYPASS_COOKIE_NAME": "maintenance_bypass",
    "MAINTENANCE_BYPASS_COOKIE_MAX_AGE": 12 * 3600,
    "MAINTENANCE_BYPASS_COOKIE_SECURE": None,
    # Sessions.
    "MAINTENANCE_SESSION_INDEX": True,
    "MAINTENANCE_SESSION_TOUCH_INTERVAL": 60,
    "MAINTENANCE_SESSION_ACTIVE_WINDOW": 1800,
    "MAINTENANCE_LOGOUT_NON_ADMINS": True,
    "MAINTENANCE_INVALIDATE_ON_ENABLE": True,
    # Status API and stream.
    "MAINTENANCE_API_ENABLED": True,
    "MAINTENANCE_API_PREFIX": "/api/maintenance",
    "MAINTENANCE_TRUSTED_ORIGINS": (),
    "MAINTENANCE_SSE_HEARTBEAT": 15.0,
    "MAINTENANCE_SSE_MAX_SECONDS": 300.0,
    "MAINTENANCE_SSE_RETRY_MS": 2000,
    # Open streams per process beyond which a client is told to poll (None: 1000 users /
    # 100 administrators on gevent or eventlet, 2 / 2 on a threaded or sync server).
    "MAINTENANCE_SSE_MAX_STREAMS": None,
    "MAINTENANCE_SSE_MAX_ADMIN_STREAMS": None,
    # How the 503 page polls the status: jittered backoff from MIN to MAX seconds.
    "MAINTENANCE_POLL_MIN_SECONDS": 5.0,
    "MAINTENANCE_POLL_MAX_SECONDS": 60.0,
    # Metrics and CLI.
    "MAINTENANCE_METRICS_PATH": "/metrics",
    "MAINTENANCE_CLI": True,
    # Register as a web node when the app is set up (and in forked server workers).
    "MAINTENANCE_REGISTER_ON_START": True,
}


def apply_defaults(app: Flask) -> None:
    """``app.config.setdefault`` every key (the only way the Flask side reads settings)."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)


def _globs(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def _secret(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else max(0, int(value))


def _status_code(value: Any) -> int:
    code = int(value)
    if not 400 <= code <= 599:
        raise ValueError(f"MAINTENANCE_STATUS_CODE must be a 4xx or 5xx status, got {value!r}")
    return code


def _callable(value: Any, key: str) -> Callable[..., Any] | None:
    if value is None or callable(value):
        return value
    raise TypeError(f"{key} must be callable, got {type(value).__name__}")


@dataclass(frozen=True)
class WebConfig:
    """The config of one app, read once at ``init_app`` (hooks close over it)."""

    hook_enabled: bool
    exempt_endpoints: re.Pattern[str] | None
    exempt_paths: re.Pattern[str] | None
    allowlist: Allowlist
    current_user: Callable[[], Any] | None
    is_admin: Callable[[Any], bool] | None
    is_critical_admin: Callable[[Any], bool] | None
    role_key: str
    user_key: str
    json_paths: tuple[str, ...]
    template: str
    messages: Mapping[str, str]
    handle_blocked: bool
    status_code: int
    redirect_url: str | None
    static_page: str | None
    secret_key: str | None
    bypass_path: str
    bypass_link_ttl: int
    #: The site's public URL for bypass links (app config, else the service's settings).
    base_url: str | None
    bypass_cookie: str
    bypass_max_age: int
    bypass_secure: bool | None
    session_index: bool
    touch_interval: float
    active_window: float
    logout_non_admins: bool
    invalidate_on_enable: bool
    api_enabled: bool
    api_prefix: str
    trusted_origins: tuple[str, ...]
    sse_heartbeat: float
    sse_max_seconds: float
    sse_retry_ms: int
    sse_max_streams: int | None
    sse_max_admin_streams: int | None
    poll_min_seconds: float
    poll_max_seconds: float
    metrics_path: str | None
    cli: bool
    register_on_start: bool

    @classmethod
    def from_app(cls, app: Flask, fallback_secret: str | None) -> WebConfig:
        """Read (and check) every ``MAINTENANCE_*`` key of ``app``."""
        c = app.config
        messages = c["MAINTENANCE_MESSAGES"] or {}
        if not isinstance(messages, Mapping):
            raise TypeError("MAINTENANCE_MESSAGES must be a mapping of operation -> template")
        poll_min = max(0.5, float(c["MAINTENANCE_POLL_MIN_SECONDS"]))
        return cls(
            hook_enabled=bool(c["MAINTENANCE_HOOK_ENABLED"]),
            exempt_endpoints=_globs(c["MAINTENANCE_EXEMPT_ENDPOINTS"]),
            exempt_paths=_globs(c["MAINTENANCE_EXEMPT_PATHS"]),
            allowlist=Allowlist.from_config(
                c["MAINTENANCE_ALLOWED_IPS"],
                c["MAINTENANCE_TRUSTED_PROXIES"],
                c["MAINTENANCE_ALLOWED_PATHS"],
            ),
            current_user=_callable(c["MAINTENANCE_CURRENT_USER"], "MAINTENANCE_CURRENT_USER"),
            is_admin=_callable(c["MAINTENANCE_IS_ADMIN"], "MAINTENANCE_IS_ADMIN"),
            is_critical_admin=_callable(
                c["MAINTENANCE_IS_CRITICAL_ADMIN"], "MAINTENANCE_IS_CRITICAL_ADMIN"
            ),
            role_key=str(c["MAINTENANCE_SESSION_ROLE_KEY"]),
            user_key=str(c["MAINTENANCE_SESSION_USER_KEY"]),
            json_paths=tuple(c["MAINTENANCE_JSON_PATHS"] or ()),
            template=str(c["MAINTENANCE_TEMPLATE"]),
            messages={str(k): str(v) for k, v in messages.items()},
            handle_blocked=bool(c["MAINTENANCE_HANDLE_BLOCKED"]),
            status_code=_status_code(c["MAINTENANCE_STATUS_CODE"]),
            redirect_url=str(c["MAINTENANCE_REDIRECT_URL"] or "") or None,
            static_page=str(c["MAINTENANCE_STATIC_PAGE"] or "") or None,
            secret_key=_secret(c["MAINTENANCE_SECRET_KEY"] or fallback_secret or app.secret_key),
            bypass_path=str(c["MAINTENANCE_BYPASS_PATH"]),
            bypass_link_ttl=check_ttl(int(c["MAINTENANCE_BYPASS_LINK_TTL"])),
            base_url=str(c["MAINTENANCE_BASE_URL"]).rstrip("/")
            if c["MAINTENANCE_BASE_URL"]
            else None,
            bypass_cookie=str(c["MAINTENANCE_BYPASS_COOKIE_NAME"]),
            bypass_max_age=int(c["MAINTENANCE_BYPASS_COOKIE_MAX_AGE"]),
            bypass_secure=c["MAINTENANCE_BYPASS_COOKIE_SECURE"],
            session_index=bool(c["MAINTENANCE_SESSION_INDEX"]),
            touch_interval=float(c["MAINTENANCE_SESSION_TOUCH_INTERVAL"]),
            active_window=float(c["MAINTENANCE_SESSION_ACTIVE_WINDOW"]),
            logout_non_admins=bool(c["MAINTENANCE_LOGOUT_NON_ADMINS"]),
            invalidate_on_enable=bool(c["MAINTENANCE_INVALIDATE_ON_ENABLE"]),
            api_enabled=bool(c["MAINTENANCE_API_ENABLED"]),
            api_prefix=str(c["MAINTENANCE_API_PREFIX"]).rstrip("/"),
            trusted_origins=tuple(o.rstrip("/") for o in c["MAINTENANCE_TRUSTED_ORIGINS"] or ()),
            sse_heartbeat=float(c["MAINTENANCE_SSE_HEARTBEAT"]),
            sse_max_seconds=float(c["MAINTENANCE_SSE_MAX_SECONDS"]),
            sse_retry_ms=int(c["MAINTENANCE_SSE_RETRY_MS"]),
            sse_max_streams=_optional_int(c["MAINTENANCE_SSE_MAX_STREAMS"]),
            sse_max_admin_streams=_optional_int(c["MAINTENANCE_SSE_MAX_ADMIN_STREAMS"]),
            poll_min_seconds=poll_min,
            poll_max_seconds=max(poll_min, float(c["MAINTENANCE_POLL_MAX_SECONDS"])),
            metrics_path=c["MAINTENANCE_METRICS_PATH"] or None,
            cli=bool(c["MAINTENANCE_CLI"]),
            register_on_start=bool(c["MAINTENANCE_REGISTER_ON_START"]),
        )

    def is_exempt(self, endpoint: str | None, path: str) -> bool:
        """Whether the app said this endpoint or path is never blocked (the page refused
        browsers are redirected to among them)."""
        if self.redirect_url and self.redirect_url.startswith("/") and path == self.redirect_url:
            return True
        if self.exempt_endpoints is not None and endpoint and self.exempt_endpoints.match(endpoint):
            return True
        return self.exempt_paths is not None and self.exempt_paths.match(path) is not None
