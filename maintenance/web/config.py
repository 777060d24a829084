"""The ``MAINTENANCE_*`` Flask config keys, their defaults, and the per-app view of them."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask

from ..bypass_tokens import LINK_TTL

#: Every config key the Flask side reads, with its default (``app.config.setdefault``).
DEFAULTS: dict[str, Any] = {
    # Which control plane to use.
    "MAINTENANCE_SERVICE": None,
    "MAINTENANCE_SETTINGS": None,
    # The request hook.
    "MAINTENANCE_HOOK_ENABLED": True,
    "MAINTENANCE_EXEMPT_ENDPOINTS": (),
    "MAINTENANCE_EXEMPT_PATHS": (),
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
    # Bypass links and cookie.
    "MAINTENANCE_SECRET_KEY": None,
    "MAINTENANCE_BYPASS_PATH": "/_maintenance/bypass/<token>",
    "MAINTENANCE_BYPASS_LINK_TTL": LINK_TTL,
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
    # Metrics and CLI.
    "MAINTENANCE_METRICS_PATH": "/metrics",
    "MAINTENANCE_CLI": True,
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
    current_user: Callable[[], Any] | None
    is_admin: Callable[[Any], bool] | None
    is_critical_admin: Callable[[Any], bool] | None
    role_key: str
    user_key: str
    json_paths: tuple[str, ...]
    template: str
    messages: Mapping[str, str]
    secret_key: str | None
    bypass_path: str
    bypass_link_ttl: int
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
    metrics_path: str | None
    cli: bool

    @classmethod
    def from_app(cls, app: Flask, fallback_secret: str | None) -> WebConfig:
        """Read (and check) every ``MAINTENANCE_*`` key of ``app``."""
        c = app.config
        messages = c["MAINTENANCE_MESSAGES"] or {}
        if not isinstance(messages, Mapping):
            raise TypeError("MAINTENANCE_MESSAGES must be a mapping of operation -> template")
        return cls(
            hook_enabled=bool(c["MAINTENANCE_HOOK_ENABLED"]),
            exempt_endpoints=_globs(c["MAINTENANCE_EXEMPT_ENDPOINTS"]),
            exempt_paths=_globs(c["MAINTENANCE_EXEMPT_PATHS"]),
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
            secret_key=_secret(c["MAINTENANCE_SECRET_KEY"] or fallback_secret or app.secret_key),
            bypass_path=str(c["MAINTENANCE_BYPASS_PATH"]),
            bypass_link_ttl=int(c["MAINTENANCE_BYPASS_LINK_TTL"]),
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
            metrics_path=c["MAINTENANCE_METRICS_PATH"] or None,
            cli=bool(c["MAINTENANCE_CLI"]),
        )

    def is_exempt(self, endpoint: str | None, path: str) -> bool:
        """Whether the app said this endpoint or path is never blocked."""
        if self.exempt_endpoints is not None and endpoint and self.exempt_endpoints.match(endpoint):
            return True
        return self.exempt_paths is not None and self.exempt_paths.match(path) is not None
