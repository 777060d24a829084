"""The ``MAINTENANCE_ADMIN_*`` Flask config keys of the admin panel and their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask

#: Every config key the admin panel reads, with its default (``app.config.setdefault``).
DEFAULTS: dict[str, Any] = {
    "MAINTENANCE_ADMIN_URL_PREFIX": "/admin/maintenance",
    "MAINTENANCE_ADMIN_LOGIN_URL": None,
    "MAINTENANCE_ADMIN_POLL_SECONDS": 5.0,
    "MAINTENANCE_ADMIN_CHART_MINUTES": 30,
    "MAINTENANCE_ADMIN_HISTORY_PAGE": 10,
    "MAINTENANCE_ADMIN_REPORTS_LIMIT": 20,
    "MAINTENANCE_ADMIN_CSRF_TTL": 8 * 3600,
    "MAINTENANCE_ADMIN_EMERGENCY_PHRASE": "EMERGENCY",
}


def apply_defaults(app: Flask) -> None:
    """``app.config.setdefault`` every key."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)


@dataclass(frozen=True)
class AdminConfig:
    """The admin panel's settings for one app, read once at ``init_app``."""

    url_prefix: str
    login_url: str | None
    poll_seconds: float
    chart_minutes: int
    history_page: int
    reports_limit: int
    csrf_ttl: int
    emergency_phrase: str

    @classmethod
    def from_app(cls, app: Flask, url_prefix: str | None = None) -> AdminConfig:
        """Read (and check) every ``MAINTENANCE_ADMIN_*`` key of ``app``."""
        c = app.config
        config = cls(
            url_prefix=str(url_prefix or c["MAINTENANCE_ADMIN_URL_PREFIX"]).rstrip("/"),
            login_url=c["MAINTENANCE_ADMIN_LOGIN_URL"] or None,
            poll_seconds=float(c["MAINTENANCE_ADMIN_POLL_SECONDS"]),
            chart_minutes=int(c["MAINTENANCE_ADMIN_CHART_MINUTES"]),
            history_page=int(c["MAINTENANCE_ADMIN_HISTORY_PAGE"]),
            reports_limit=int(c["MAINTENANCE_ADMIN_REPORTS_LIMIT"]),
            csrf_ttl=int(c["MAINTENANCE_ADMIN_CSRF_TTL"]),
            emergency_phrase=str(c["MAINTENANCE_ADMIN_EMERGENCY_PHRASE"]).strip(),
        )
        if config.poll_seconds <= 0:
            raise ValueError("MAINTENANCE_ADMIN_POLL_SECONDS must be > 0")
        if not 1 <= config.chart_minutes <= 120:
            raise ValueError("MAINTENANCE_ADMIN_CHART_MINUTES must be 1..120 (rates live 2 h)")
        if not 1 <= config.history_page <= 500:
            raise ValueError("MAINTENANCE_ADMIN_HISTORY_PAGE must be 1..500")
        if not config.emergency_phrase:
            raise ValueError("MAINTENANCE_ADMIN_EMERGENCY_PHRASE must not be empty")
        return config
