"""Failure policy (DESIGN §4): Redis down -> SQL polling; SQL down -> last known status.

A private redis-server is killed and restarted, and PostgreSQL is reached
through a TCP proxy that can be cut: real outages, real recoveries.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from maintenance import EnhancedMaintenanceModeService, OperationType, StoreUnavailable
from tests.helpers import wait_for
from tests.services import PrivateRedis, TcpProxy

Op = OperationType
USER = {"role": "user"}


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.close()


def test_redis_down_nodes_poll_sql_and_recover_when_it_returns(
    make_service,
    private_redis: PrivateRedis,  # type: ignore[no-untyped-def]
) -> None:
    web = make_service(kind="web", redis_url=private_redis.url).start()
    admin = make_service(kind="cli", register=False, redis_url=private_redis.url)
    private_redis.kill()
    wait_for(lambda: not web.cache.health.redis_ok, 5, what="Redis outage noticed")

    result = admin.enable_maintenance("Redis is down but SQL is not", enabled_by="ops")
    assert result.propagation == "redis-unavailable" and not result.fenced
    # The web node picks the change up from SQL on its timer; its hot path never raised.
    wait_for(lambda: web.is_operation_blocked(Op.CAPTION_GENERATION, USER), 5, what="SQL poll")
    status = web.get_maintenance_status()
    assert status.degraded and "Redis unavailable" in (status.degraded_reason or "")

    private_redis.start()  # same port, empty: keeps nothing on disk
    wait_for(lambda: web.cache.health.redis_ok, 10, what="Redis back")
    wait_for(lambda: web.cache.bus.read() is not None, 10, what="status key rebuilt from SQL")
    assert web.cache.bus.read().version == result.status.version  # type: ignore[union-attr]
    assert not web.get_maintenance_status().degraded
    # Propagation by pub/sub works again, fenced.
    again = admin.disable_maintenance("ops", wait=5)
    wait_for(lambda: not web.is_operation_blocked(Op.CAPTION_GENERATION, USER), 5)
    assert again.fenced and web.cache.node_id in again.applied_nodes


def test_flushall_is_rebuilt_from_sql(
    make_service,
    private_redis: PrivateRedis,  # type: ignore[no-untyped-def]
) -> None:
    web = make_service(kind="web", redis_url=private_redis.url).start()
    admin = make_service(kind="cli", register=False, redis_url=private_redis.url)
    version = admin.enable_maintenance("before the flush", enabled_by="ops").status.version
    redis.Redis.from_url(private_redis.url).flushall()
    wait_for(lambda: web.cache.bus.read() is not None, 5, what="status key rebuilt")
    assert web.cache.bus.read().version == version  # type: ignore[union-attr]
    wait_for(lambda: web.cache.node_id in admin.nodes(), 5, what="node re-registered")
    assert web.is_operation_blocked(Op.JOB_CREATION, USER)
    result = admin.disable_maintenance("ops", wait=5)
    assert result.fenced


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    proxy = TcpProxy("127.0.0.1", 5432).start()
    yield proxy, postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    proxy.cut()


def test_sql_down_keeps_the_last_known_status_and_says_so(
    make_service,
    pg_proxy: tuple[TcpProxy, str],  # type: ignore[no-untyped-def]
) -> None:
    proxy, url = pg_proxy
    web = make_service(kind="web", database_url=url).start()
    admin = make_service(kind="cli", register=False, database_url=url)
    admin.enable_maintenance("before SQL went away", enabled_by="ops", wait=5)
    assert web.is_operation_blocked(Op.CAPTION_GENERATION, USER)

    proxy.cut()
    wait_for(lambda: not web.cache.health.sql_ok, 10, what="SQL outage noticed")
    assert web.is_operation_blocked(Op.CAPTION_GENERATION, USER)  # last known status holds
    status = web.get_maintenance_status()
    assert status.degraded and "SQL unavailable" in (status.degraded_reason or "")
    with pytest.raises(StoreUnavailable):  # writes refuse cleanly, change nothing
        admin.disable_maintenance("ops")

    proxy.restore()
    wait_for(lambda: web.cache.health.sql_ok, 10, what="SQL back")
    admin.disable_maintenance("ops", wait=5)
    assert not web.is_operation_blocked(Op.CAPTION_GENERATION, USER)


def test_both_down_fail_closed_blocks_mutating_work(
    make_service,
    private_redis: PrivateRedis,
    pg_proxy: tuple[TcpProxy, str],  # type: ignore[no-untyped-def]
) -> None:
    proxy, url = pg_proxy
    closed: EnhancedMaintenanceModeService = make_service(
        kind="web", redis_url=private_redis.url, database_url=url, fail_closed=True
    ).start()
    opened: EnhancedMaintenanceModeService = make_service(
        kind="web", redis_url=private_redis.url, database_url=url
    ).start()
    assert not closed.is_operation_blocked(Op.IMAGE_PROCESSING, USER)
    private_redis.kill()
    proxy.cut()
    wait_for(lambda: closed.cache.health.degraded and not closed.cache.health.sql_ok, 10)
    wait_for(lambda: opened.cache.health.degraded and not opened.cache.health.sql_ok, 10)
    assert closed.is_operation_blocked(Op.IMAGE_PROCESSING, USER)
    assert not closed.is_operation_blocked(Op.READ_OPERATIONS, USER)
    assert not closed.is_operation_blocked(Op.IMAGE_PROCESSING, {"role": "admin"})
    assert not opened.is_operation_blocked(Op.IMAGE_PROCESSING, USER)  # last known: off
    status = opened.get_maintenance_status()
    assert status.degraded and "Redis" in (status.degraded_reason or "")
    assert "SQL" in (status.degraded_reason or "")
