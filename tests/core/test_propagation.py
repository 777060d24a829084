"""Propagation to many processes and fenced activation, against real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from maintenance import EnhancedMaintenanceModeService, Settings
from maintenance.nodes import NodeRegistry
from tests.helpers import wait_for

NODE = Path(__file__).with_name("node_proc.py")


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "MAINTENANCE_DATABASE_URL": settings.database_url,
        "MAINTENANCE_REDIS_PREFIX": settings.redis_prefix,
        "MAINTENANCE_REVALIDATE_INTERVAL": str(settings.revalidate_interval),
        "MAINTENANCE_HEARTBEAT_INTERVAL": str(settings.heartbeat_interval),
        "MAINTENANCE_NODE_TTL": str(settings.node_ttl),
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }


@pytest.fixture
def nodes(settings: Settings) -> Iterator[list[tuple[subprocess.Popen[str], str]]]:
    """Eight real node processes following the status."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(NODE), "web"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=settings_env(settings),
        )
        for _ in range(8)
    ]
    started = [(p, (p.stdout.readline() if p.stdout else "").strip()) for p in procs]
    yield started
    for p, _ in started:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGCONT)
        if p.stdin:
            p.stdin.close()
    for p, _ in started:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def test_enable_returns_once_all_eight_processes_applied_it(
    make_service,
    nodes: list[tuple[subprocess.Popen[str], str]],  # type: ignore[no-untyped-def]
) -> None:
    admin: EnhancedMaintenanceModeService = make_service(kind="cli", register=False)
    ids = {node_id for _, node_id in nodes}
    wait_for(lambda: ids <= set(admin.nodes()), 10, what="8 nodes registered")
    for round_ in range(5):
        result = admin.enable_maintenance(f"round {round_}", enabled_by="ops", wait=5)
        assert result.fenced, result.lagging_nodes
        assert ids <= set(result.applied_nodes)
        live = admin.nodes()
        assert all(live[i].applied_version >= result.status.version for i in ids)
        admin.disable_maintenance("ops", wait=5)


def test_a_frozen_node_is_reported_as_lagging_then_catches_up(
    make_service,
    nodes: list[tuple[subprocess.Popen[str], str]],  # type: ignore[no-untyped-def]
) -> None:
    admin: EnhancedMaintenanceModeService = make_service(kind="cli", register=False)
    ids = {node_id for _, node_id in nodes}
    wait_for(lambda: ids <= set(admin.nodes()), 10, what="8 nodes registered")
    frozen_proc, frozen_id = nodes[3]
    os.kill(frozen_proc.pid, signal.SIGSTOP)
    result = admin.enable_maintenance("freeze test", enabled_by="ops", wait=0.3)
    assert not result.fenced and result.propagation == "timeout"
    assert [n["node_id"] for n in result.lagging_nodes] == [frozen_id]
    assert len(result.applied_nodes) == 7
    os.kill(frozen_proc.pid, signal.SIGCONT)
    version = result.status.version
    wait_for(lambda: admin.nodes()[frozen_id].applied_version >= version, 10, what="catch up")


def test_a_node_acks_without_waiting_for_a_reply_and_recovers_a_lost_connection(
    redis_url: str, prefix: str
) -> None:
    from maintenance.acks import AckSender
    from maintenance.keys import Keys
    from maintenance.nodes import NodeRegistry
    from maintenance.redisconn import make_client

    client = make_client(redis_url)
    keys = Keys(prefix)
    listener = make_client(redis_url, blocking=True).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(keys.acks)
    acks = AckSender(client, keys, NodeRegistry(client, keys))
    heard: list[bytes] = []

    def heard_all(count: int) -> bool:
        message = listener.get_message(timeout=0.2)
        if message is not None:
            heard.append(message["data"])
        return len(heard) >= count

    for version in (1, 2, 3):
        acks.send("web@host:1:abc", version)
    wait_for(lambda: heard_all(3), timeout=5)
    assert heard == [b"web@host:1:abc 1", b"web@host:1:abc 2", b"web@host:1:abc 3"]
    assert acks.quiet  # Redis took CLIENT REPLY OFF: nothing was waited for
    assert client.hget(keys.node_applied, "web@host:1:abc") == b"3"
    acks._conn._sock.close()  # the connection is lost while idle
    acks.send("web@host:1:abc", 4)
    wait_for(lambda: heard_all(4), timeout=5)
    assert client.hget(keys.node_applied, "web@host:1:abc") == b"4"
    acks.close()
    listener.close()


def test_a_node_that_died_just_before_the_enable_is_not_waited_for_past_its_heartbeat(
    make_service,  # type: ignore[no-untyped-def]
) -> None:
    admin: EnhancedMaintenanceModeService = make_service(kind="cli", register=False)
    ghost = "worker@ghost:1:dead00"
    # Its last heartbeat, then it was killed: live for one more TTL, never to ack.
    NodeRegistry(admin.redis, admin.keys).heartbeat(ghost, 0, {"kind": "worker"})
    patience = admin.settings.node_ttl + 20
    result = admin.enable_maintenance("after a crash", enabled_by="ops", wait=patience)
    assert result.fenced, result.lagging_nodes
    assert ghost not in result.applied_nodes
    assert result.waited_seconds < patience  # once its heartbeat lapsed, not at the deadline
