"""Fixtures for the command layer: the panel's test app (JSON API and panel) on Flask-Session's
Redis sessions, logged-in clients, and the ``maintenance`` CLI run as a real process
against the same Redis prefix and SQL file."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maintenance import EnhancedMaintenanceModeService
from maintenance.settings import Settings
from tests.admin_ui.app import PANEL, build_app
from tests.celery.conftest import ROOT
from tests.support import MAINTENANCE_CLI, with_redis_sessions

API = "/api/maintenance"
ORIGIN = {"Origin": "http://localhost"}

Cli = Callable[..., subprocess.CompletedProcess[str]]


def client_as(app: Flask, username: str, role: str = "user") -> FlaskClient:
    client = app.test_client()
    response = client.get(f"/login?username={username}&role={role}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return client


def me(client: FlaskClient) -> Any:
    return client.get("/me").get_json()


def panel_token(client: FlaskClient) -> str:
    page = client.get(PANEL).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a CLI process of this deployment runs with."""
    return {
        **os.environ,
        "REDIS_URL": str(settings.redis_url),
        "MAINTENANCE_REDIS_PREFIX": settings.redis_prefix,
        "MAINTENANCE_DATABASE_URL": settings.database_url,
        "MAINTENANCE_ENABLE_WAIT": "5",
        "MAINTENANCE_ACTOR": "ops",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAINTENANCE_CLI, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def web_service(make_service: Any) -> EnhancedMaintenanceModeService:
    """The web node (registered: fenced changes wait for it)."""
    return make_service(kind="web").start()  # type: ignore[no-any-return]


@pytest.fixture
def app(web_service: EnhancedMaintenanceModeService, redis_url: str, prefix: str) -> Flask:
    return with_redis_sessions(build_app(web_service), redis_url, prefix)


@pytest.fixture
def cli(settings: Settings) -> Cli:
    env = cli_env(settings)

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli({**env, **extra}, *args)

    return run
