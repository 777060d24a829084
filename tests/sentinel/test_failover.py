"""Redis Sentinel failover during maintenance (DESIGN §4 failure policy).

Real processes throughout: a master, a replica and three sentinels
(``cluster.py``), node processes following the status, an admin and a web
node in this process. The master is SIGKILLed while maintenance is on; the
sentinels promote the replica. Every node must keep its status through the
failover window (degraded, never failing a request), reconnect to the new
master, and the next fenced enable must be fenced again. Deadlines come from
the deployment's own timeouts (``promotion_deadline``) and the settings.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from maintenance import EnhancedMaintenanceModeService, OperationType, Settings, build_service
from maintenance.keys import Keys
from tests.celery.app import make_app
from tests.celery.conftest import close_fleet, delete_prefix, fleet_environment, open_fleet
from tests.helpers import wait_for

from .cluster import SentinelCluster
from .conftest import NodeProcess

pytestmark = pytest.mark.slow
USER = {"role": "user"}
#: A caption job on an idle worker runs in milliseconds; generous for a busy machine.
RUN_DEADLINE = 30.0


def reconnect_deadline(settings: Settings) -> float:
    """How long a node may take to find the promoted master: its next re-validation,
    a heartbeat, and a node TTL of slack for a starved thread on a busy machine."""
    return settings.revalidate_interval + settings.heartbeat_interval + settings.node_ttl


def settled(node: NodeProcess, expect: dict[str, Any]) -> dict[str, Any] | None:
    """The node's view when it is healthy and holds ``expect``'s status, else None."""
    view = node.view()
    same = all(view[k] == v for k, v in expect.items())
    return view if same and view["redis_ok"] and not view["degraded"] else None


def status_of(result: Any) -> dict[str, Any]:
    status = result.status
    return {
        "version": status.version,
        "is_active": status.is_active,
        "mode": status.mode.value,
        "activation_id": status.activation_id,
        "blocks_captions": True,
    }


@pytest.fixture
def admin(sentinel_settings: Settings) -> Any:
    service = build_service(sentinel_settings, kind="cli", register=False)
    yield service
    service.close()
    service.db.dispose()


@pytest.fixture
def web(sentinel_settings: Settings) -> Any:
    service = build_service(sentinel_settings, kind="web").start()
    yield service
    service.close()
    service.db.dispose()


def fail_over(cluster: SentinelCluster, web: EnhancedMaintenanceModeService) -> int:
    """Kill the master; see the window degraded but answering; wait for the promotion."""
    killed = cluster.kill_master()
    # The window: this node cannot reach Redis, says so, and still answers.
    wait_for(
        lambda: web.get_maintenance_status().degraded,
        cluster.down_after_ms / 1000 + web.settings.revalidate_interval * 5,
        what="the failover window to show as degraded",
    )
    status = web.get_maintenance_status()
    assert "redis" in (status.degraded_reason or "").lower()
    assert status.is_active and web.is_operation_blocked(OperationType.CAPTION_GENERATION, USER)
    web.record_blocked_attempt(OperationType.CAPTION_GENERATION, USER)  # never raises
    try:
        wait_for(
            lambda: cluster.master_port() not in (None, killed),
            cluster.promotion_deadline,
            interval=0.1,
            what="the sentinels to promote the replica",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{cluster.logs()}") from None
    return killed


def test_failover_keeps_every_nodes_status_and_the_next_enable_is_fenced(
    cluster: SentinelCluster,
    sentinel_settings: Settings,
    node_processes: list[NodeProcess],
    admin: EnhancedMaintenanceModeService,
    web: EnhancedMaintenanceModeService,
) -> None:
    ids = {n.node_id for n in node_processes} | {web.cache.node_id}
    wait_for(lambda: ids <= set(admin.nodes()), 10, what="every node registered")
    on = admin.enable_maintenance("database migration", enabled_by="ops", wait=5)
    assert on.fenced and ids <= set(on.applied_nodes), on.lagging_nodes
    before = status_of(on)
    assert all(settled(n, before) for n in node_processes)

    killed = fail_over(cluster, web)

    deadline = reconnect_deadline(sentinel_settings)
    for node in node_processes:
        wait_for(lambda n=node: settled(n, before), deadline, what=f"{node.node_id} reconnected")
    wait_for(lambda: not web.get_maintenance_status().degraded, deadline, what="web reconnected")
    assert web.status.version == on.status.version and web.status.is_active
    wait_for(lambda: ids <= set(admin.nodes()), deadline, what="every node heartbeating")

    # The admin's standing ack subscription died with the old master: still fenced.
    extended = admin.enable_maintenance(
        "database migration, extended", duration="1h", enabled_by="ops", wait=5
    )
    assert extended.fenced and extended.propagation == "fenced", extended.to_dict()
    assert ids <= set(extended.applied_nodes)
    for node in node_processes:
        assert settled(node, status_of(extended))

    off = admin.disable_maintenance("ops", wait=5)
    assert off.fenced and ids <= set(off.applied_nodes)
    assert not any(n.view()["blocks_captions"] for n in node_processes)
    assert cluster.master_port() != killed


@pytest.mark.parametrize("lost", ["missing", "older"])
def test_a_promoted_replica_that_missed_writes_is_rebuilt_from_sql(
    lost: str,
    cluster: SentinelCluster,
    sentinel_settings: Settings,
    node_processes: list[NodeProcess],
    admin: EnhancedMaintenanceModeService,
    web: EnhancedMaintenanceModeService,
) -> None:
    """Replication is asynchronous: the replica Sentinel promotes may lack the
    last status write (``older``) or the status keys altogether (``missing``)."""
    keys = Keys(sentinel_settings.redis_prefix)
    first = admin.enable_maintenance("first step", enabled_by="ops", wait=5)
    assert first.fenced
    master = cluster.master_port()
    assert master is not None
    with redis.Redis(port=master) as client:
        first_json, first_version = client.get(keys.status), client.get(keys.status_version)
    second = admin.enable_maintenance("second step", enabled_by="ops", wait=5)
    assert second.fenced
    expect = status_of(second)

    replica = next(p for p in cluster.data_ports if p != master)
    with redis.Redis(port=replica) as client:
        wait_for(lambda: client.get(keys.status_version) == str(second.status.version).encode())
        # Make the replica what it would be had the last write(s) not reached it.
        client.config_set("replica-read-only", "no")
        if lost == "missing":
            client.delete(keys.status, keys.status_version)
        else:
            client.set(keys.status, first_json)
            client.set(keys.status_version, first_version)

    fail_over(cluster, web)

    deadline = reconnect_deadline(sentinel_settings)
    with redis.Redis(port=replica) as client:
        wait_for(
            lambda: client.get(keys.status_version) == str(second.status.version).encode(),
            deadline,
            what="the new master's status rebuilt from SQL",
        )
    for node in node_processes:
        wait_for(lambda n=node: settled(n, expect), deadline, what=f"{node.node_id} kept v2")
    # A node starting now reads the rebuilt key: it sees the second step, not the first.
    late = NodeProcess(sentinel_settings, "web")
    try:
        assert late.view()["version"] == second.status.version
    finally:
        late.close()
    wait_for(lambda: web.cache.node_id in admin.nodes(), deadline, what="web re-registered")
    again = admin.enable_maintenance("third step", enabled_by="ops", wait=5)
    assert again.fenced and web.cache.node_id in again.applied_nodes


def test_a_celery_worker_rides_out_the_failover(cluster: SentinelCluster, tmp_path: Path) -> None:
    """A real prefork worker whose control plane is the Sentinel deployment (its broker
    is the ordinary Redis): it survives the failover, is fenced again, and still defers
    a straggler that maintenance blocks and runs it once when maintenance ends."""
    env = fleet_environment(tmp_path, f"ts{uuid.uuid4().hex[:8]}")
    env["REDIS_URL"] = cluster.url
    fleet = open_fleet(env)
    try:
        worker = fleet.start_worker("w1", [fleet.default_queue])
        service = fleet.service
        on = service.enable_maintenance("failover drill", enabled_by="ops", wait=5)
        assert on.fenced and any(n.startswith("worker@") for n in on.applied_nodes)

        fail_over(cluster, service)
        deadline = reconnect_deadline(service.settings)
        wait_for(lambda: not service.get_maintenance_status().degraded, deadline, what="healthy")
        wait_for(
            lambda: any(n.kind == "worker" for n in service.nodes().values()),
            deadline,
            what="the worker re-registered on the new master",
        )
        assert worker.alive(), worker.tail()
        again = service.enable_maintenance("failover drill, extended", enabled_by="ops", wait=5)
        assert again.fenced and any(n.startswith("worker@") for n in again.applied_nodes)

        # A publisher without the hooks: the worker-side gate is all that stands.
        make_app(fleet.config).send_task(
            "captions.generate_caption", ("straggler",), queue=fleet.default_queue
        )
        wait_for(
            lambda: service.get_maintenance_status().deferred_jobs_count == 1,
            RUN_DEADLINE,
            what="the straggler deferred by the worker",
        )
        assert fleet.runs("straggler") == 0
        service.disable_maintenance("ops", wait=5)
        wait_for(lambda: fleet.runs("straggler") == 1, RUN_DEADLINE, what="requeued and run")
        assert worker.alive(), worker.tail()
    finally:
        close_fleet(fleet)
        delete_prefix(env["CELERY_BROKER_URL"], env["TEST_COUNTER_PREFIX"])
