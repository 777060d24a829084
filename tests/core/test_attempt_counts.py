"""Blocked-attempt counting off the request path: ``record`` touches no network, the
counts reach Redis by themselves within the flush delay (50 ms), summed into one write,
and none is lost while Redis is unreachable."""

from __future__ import annotations

import threading

import redis

from maintenance import EnhancedMaintenanceModeService
from maintenance.attempts import AttemptRecorder, BlockedAttempt, blocked_counters, rates
from maintenance.domain.modes import OperationType as Op
from tests.helpers import wait_for
from tests.services import PrivateRedis, TcpProxy

OPS = ["caption_generation", "platform_operations"]


def _attempt(op: Op = Op.CAPTION_GENERATION, activation: str = "a1") -> BlockedAttempt:
    return BlockedAttempt(operation=op, activation_id=activation)


def test_counts_reach_redis_without_a_reader_and_add_up_across_threads(
    service: EnhancedMaintenanceModeService,
) -> None:
    recorder = AttemptRecorder(service.redis, service.keys, service.db, sample=1000)

    def count(n: int) -> None:
        for _ in range(n):
            recorder.record(_attempt())

    threads = [threading.Thread(target=count, args=(500,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.record(_attempt(Op.PLATFORM_OPERATIONS))
    expected = {"caption_generation": 4000, "platform_operations": 1}
    # Nobody flushes: the background flusher alone writes them.
    wait_for(
        lambda: blocked_counters(service.redis, service.keys, "a1", OPS) == expected,
        5,
        what="counts in Redis",
    )
    assert recorder.pending() == 0
    recorder.close()


def test_readers_in_the_process_see_their_own_refusals_at_once(
    service: EnhancedMaintenanceModeService,
) -> None:
    service.enable_maintenance("counts", enabled_by="ops")
    for _ in range(3):
        service.record_blocked_attempt(Op.CAPTION_GENERATION, {"username": "u"})
    status = service.get_maintenance_status()
    assert status.extra["blocked_attempts"] == {"caption_generation": 3}
    assert sum(rates(service, minutes=2)["caption_generation"]) == 3


def test_counts_wait_while_redis_is_unreachable_and_none_is_lost(
    service: EnhancedMaintenanceModeService,
) -> None:
    private = PrivateRedis().start()
    proxy = TcpProxy("127.0.0.1", private.port).start()
    try:
        client = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=1)
        recorder = AttemptRecorder(client, service.keys, service.db, sample=1000)
        direct = redis.Redis.from_url(private.url)
        for _ in range(10):
            recorder.record(_attempt())
        wait_for(lambda: blocked_counters(direct, service.keys, "a1", OPS), 5, what="first counts")
        proxy.cut()
        for _ in range(25):
            recorder.record(_attempt())  # never raises, never waits on the network
        assert recorder.flush_counts() is False  # held, not dropped
        proxy.restore()
        wait_for(
            lambda: blocked_counters(direct, service.keys, "a1", OPS) == {"caption_generation": 35},
            10,
            what="the held counts written after Redis came back",
        )
        recorder.close()
    finally:
        proxy.cut()
        private.close()
