"""Fixtures: a private Sentinel deployment per test, and node processes that follow it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maintenance import Settings
from tests.support import fast_settings

from .cluster import SentinelCluster, SentinelUnavailable

ROOT = Path(__file__).resolve().parents[2]
NODE = Path(__file__).with_name("node_proc.py")


@pytest.fixture
def cluster() -> Iterator[SentinelCluster]:
    """Master, replica and three sentinels of this test's own (skipped where they cannot run)."""
    try:
        made = SentinelCluster()
    except FileNotFoundError as exc:
        pytest.skip(f"no redis-server to run Sentinel with: {exc}")
    try:
        made.start()
    except (SentinelUnavailable, OSError) as exc:
        made.close()
        pytest.skip(f"cannot run a Redis Sentinel deployment here: {exc}")
    yield made
    made.close()


@pytest.fixture
def sentinel_settings(cluster: SentinelCluster, tmp_path: Path) -> Settings:
    """Fast settings whose Redis is the Sentinel-managed master."""
    return fast_settings(cluster.url, f"sqlite:///{tmp_path / 'maintenance.db'}", "sentinel")


class NodeProcess:
    """A service in a process of its own, asked for what it sees through a pipe."""

    def __init__(self, settings: Settings, kind: str) -> None:
        env = {
            **os.environ,
            "REDIS_URL": settings.redis_url or "",
            "MAINTENANCE_DATABASE_URL": settings.database_url,
            "MAINTENANCE_REDIS_PREFIX": settings.redis_prefix,
            "MAINTENANCE_REVALIDATE_INTERVAL": str(settings.revalidate_interval),
            "MAINTENANCE_SQL_CHECK_INTERVAL": str(settings.sql_check_interval),
            "MAINTENANCE_HEARTBEAT_INTERVAL": str(settings.heartbeat_interval),
            "MAINTENANCE_NODE_TTL": str(settings.node_ttl),
            "PYTHONPATH": str(ROOT),
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(NODE), kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.node_id = str(self._read()["node_id"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"node process exited with {self.proc.wait(5)}")
        return dict(json.loads(line))

    def view(self) -> dict[str, Any]:
        """What this node sees now (its status, health, and a gate decision)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def node_processes(sentinel_settings: Settings) -> Iterator[list[NodeProcess]]:
    """A web, a worker and a beat node, each a process of its own."""
    made = [NodeProcess(sentinel_settings, kind) for kind in ("web", "worker", "beat")]
    yield made
    for node in made:
        node.close()
