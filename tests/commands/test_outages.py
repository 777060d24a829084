"""Degraded, not dead; honest outcomes. With Redis stopped (a private redis-server this
test owns, SIGKILLed) or SQL cut (PostgreSQL behind the TCP proxy) or SQL unreachable,
every CLI command and API endpoint answers: status from what is reachable with
``degraded`` and why, one line or one JSON body, never a traceback or an HTML 500;
a change that committed says so, and which follow-up failed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask

from maintenance import EnhancedMaintenanceModeService
from maintenance.settings import Settings
from tests.admin_ui.app import PANEL, build_app
from tests.helpers import wait_for
from tests.services import PrivateRedis, TcpProxy
from tests.support import fast_settings

from .conftest import API, ORIGIN, cli_env, client_as, me, panel_token, run_cli

#: Every CLI command with arguments that need a store (``maintenance --help`` lists them).
CLI_READS = [
    ["status"],
    ["status", "--json"],
    ["nodes"],
    ["history"],
    ["sessions"],
    ["drain"],
    ["jobs"],
    ["emergency", "--progress"],
]


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.close()


@pytest.fixture
def redis_down_world(
    private_redis: PrivateRedis, make_service: Any, sqlite_url: str, prefix: str
) -> Iterator[tuple[EnhancedMaintenanceModeService, Flask, Settings]]:
    """A web node on a private Redis (cookie sessions), an admin and a user logged in,
    then Redis SIGKILLed."""
    service = make_service(kind="web", redis_url=private_redis.url).start()
    app = build_app(service)
    settings = fast_settings(private_redis.url, sqlite_url, prefix)
    yield service, app, settings


def _one_line(out: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr
    assert len(out.stderr.strip().splitlines()) <= 1, out.stderr


def test_redis_down_every_cli_command_answers(
    redis_down_world: tuple[EnhancedMaintenanceModeService, Flask, Settings],
    private_redis: PrivateRedis,
) -> None:
    service, _app, settings = redis_down_world
    env = cli_env(settings, MAINTENANCE_ENABLE_WAIT="1")
    assert run_cli(env, "enable", "--reason", "before the outage").returncode == 0
    private_redis.kill()
    wait_for(lambda: not service.cache.health.redis_ok, 10, what="Redis outage noticed")

    status = run_cli(env, "status")
    assert status.returncode == 0, status.stderr
    assert "degraded" in status.stdout.lower() and "Redis" in status.stdout, status.stdout
    assert "before the outage" in status.stdout
    with ThreadPoolExecutor(4) as pool:  # separate processes, nothing shared: side by side
        answers = list(pool.map(lambda args: run_cli(env, *args), CLI_READS))
    for args, out in zip(CLI_READS, answers, strict=True):
        _one_line(out)
        assert out.returncode in (0, 1), (args, out.stdout, out.stderr)

    before = service.state.load().version
    enabled = run_cli(env, "enable", "--reason", "during the outage", "--wait", "3")
    _one_line(enabled)
    assert enabled.returncode == 1, enabled.stdout  # committed, but nothing was fenced
    assert "version" in enabled.stdout and "NOT done: sessions" in enabled.stdout
    assert service.state.load().version == before + 1

    declared = run_cli(env, "emergency", "--reason", "outage", "--grace", "0", "--kill-after", "0")
    _one_line(declared)
    assert declared.returncode == 1
    assert "EMERGENCY" in declared.stdout and "Redis" in declared.stdout + declared.stderr
    assert service.state.load().mode.value == "emergency"

    lifted = run_cli(env, "emergency", "--off", "--force", "-A", "tests.emergency.app")
    _one_line(lifted)
    assert lifted.returncode in (0, 1)
    assert not service.state.load().is_active

    disabled = run_cli(env, "disable")
    _one_line(disabled)
    assert disabled.returncode == 3  # nothing to disable: the lift above took effect


def test_redis_down_every_api_endpoint_answers_json(
    redis_down_world: tuple[EnhancedMaintenanceModeService, Flask, Settings],
    private_redis: PrivateRedis,
) -> None:
    service, app, _settings = redis_down_world
    admin = client_as(app, "root", "admin")
    token = panel_token(admin)
    private_redis.kill()
    wait_for(lambda: not service.cache.health.redis_ok, 10, what="Redis outage noticed")
    before = service.state.load().version

    enabled = admin.post(f"{API}/enable", json={"reason": "outage", "wait": 1}, headers=ORIGIN)
    assert enabled.status_code == 200 and enabled.is_json, enabled.get_data(as_text=True)
    body = enabled.get_json()
    assert body["committed"] and not body["complete"] and body["version"] == before + 1
    assert not body["effects"]["fencing"]["ok"] and not body["effects"]["sessions"]["ok"]
    assert service.state.load().version == before + 1  # one version, not a retry loop

    for method, path, payload in [
        ("GET", "/status", None),
        ("GET", "/history", None),
        ("GET", "/sessions", None),
        ("POST", "/sessions/invalidate", {}),
        ("POST", "/bypass-link", {}),
        ("POST", "/login-block", {"blocked": True}),
        ("GET", "/emergency", None),
        ("GET", "/blocked-operations", None),
    ]:
        response = admin.open(f"{API}{path}", method=method, json=payload, headers=ORIGIN)
        assert response.is_json, (path, response.status_code, response.get_data(as_text=True))
        assert response.status_code < 500 or response.status_code == 503, path
    refused = admin.post(f"{API}/sessions/invalidate", json={}, headers=ORIGIN)
    assert (
        refused.status_code == 503 and "no session was invalidated" in refused.get_json()["message"]
    )

    panel = admin.post(
        f"{PANEL}enable",
        data={
            "csrf_token": token,
            "reason": "outage 2",
            "mode": "normal",
            "invalidate_sessions": "on",
            "acknowledge_warnings": "on",
        },
    )
    assert panel.status_code == 303, panel.get_data(as_text=True)[:1000]
    assert service.state.load().reason == "outage 2"

    disabled = admin.post(f"{API}/disable", json={"wait": 1}, headers=ORIGIN)
    assert disabled.status_code == 200 and disabled.get_json()["committed"]
    assert not disabled.get_json()["complete"]


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    yield proxy, postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    proxy.cut()


def test_sql_cut_every_cli_command_and_api_write_answers_nothing_changed(
    make_service: Any, pg_proxy: tuple[TcpProxy, str], redis_url: str, prefix: str
) -> None:
    proxy, url = pg_proxy
    service = make_service(kind="web", database_url=url).start()
    app = build_app(service)
    admin = client_as(app, "root", "admin")
    env = cli_env(fast_settings(redis_url, url, prefix), MAINTENANCE_AUTO_MIGRATE="false")
    assert run_cli(env, "enable", "--reason", "before the cut", "--wait", "5").returncode == 0
    epoch = service.redis.get(service.keys.session_epoch)
    proxy.cut()
    wait_for(lambda: not service.cache.health.sql_ok, 15, what="SQL outage noticed")

    status = run_cli(env, "status")
    _one_line(status)
    assert status.returncode == 0 and "before the cut" in status.stdout, status.stderr
    assert "SQL" in status.stdout
    commands = [*CLI_READS, ["enable", "--reason", "x"], ["disable"], ["sessions", "--invalidate"]]
    with ThreadPoolExecutor(4) as pool:  # each fails on its own: side by side
        answers = list(pool.map(lambda args: run_cli(env, *args), commands))
    for args, out in zip(commands, answers, strict=True):
        _one_line(out)
        assert out.returncode in (0, 1), (args, out.stdout, out.stderr)

    for path, body in [
        ("/enable", {"reason": "cut"}),
        ("/sessions/invalidate", {}),
        ("/disable", {}),
    ]:
        response = admin.post(f"{API}{path}", json=body, headers=ORIGIN)
        assert response.status_code == 503 and response.is_json, response.get_data(as_text=True)
    # "Nothing changed" is true: the session epoch was not raised first.
    assert service.redis.get(service.keys.session_epoch) == epoch
    assert service.cache.status.reason == "before the cut"


def test_an_unreachable_sql_url_with_auto_migrate_is_one_line_exit_1(
    redis_url: str, prefix: str
) -> None:
    settings = fast_settings(redis_url, "postgresql://postgres@127.0.0.1:1/nowhere", prefix)
    env = cli_env(settings, MAINTENANCE_AUTO_MIGRATE="true")
    for args in (["enable", "--reason", "x"], ["history"]):
        out = run_cli(env, *args)
        _one_line(out)
        assert out.returncode == 1 and out.stderr.startswith("maintenance: error:"), out.stderr
    status = run_cli(env, "status")  # the status answers from what is reachable
    _one_line(status)
    assert status.returncode == 0 and "SQL" in status.stdout, status.stdout


def test_sql_unwritable_during_invalidation_says_the_epoch_was_raised(
    app: Flask, web_service: EnhancedMaintenanceModeService, sqlite_url: str
) -> None:
    """SQLite locked by another writer: reads work, the epoch's write fails after the purge."""
    import sqlite3

    admin = client_as(app, "root", "admin")
    user = client_as(app, "ann")
    before = web_service.state.load().version
    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=1)
    locker.execute("BEGIN IMMEDIATE")  # holds the write lock; WAL readers go on
    try:
        response = admin.post(f"{API}/sessions/invalidate", json={}, headers=ORIGIN)
    finally:
        locker.rollback()
        locker.close()
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["committed"] and not body["complete"] and not body["published"]
    assert body["count"] == 1 and body["epoch"] >= 1
    assert "raised in Redis" in body["effects"]["sessions"]["detail"]
    assert web_service.state.load().version == before  # the status did not move
    assert me(user) == {"username": None, "role": None}  # and ann is out all the same
