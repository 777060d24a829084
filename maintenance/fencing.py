"""Fenced activation: publish a new status and wait until every live node applied it."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from .bus import StatusBus
from .domain.status import MaintenanceStatus
from .keys import Keys
from .nodes import NodeInfo, NodeRegistry
from .redisconn import REDIS_ERRORS


@dataclass(frozen=True)
class ActivationResult:
    """What ``enable_maintenance`` / ``disable_maintenance`` achieved.

    ``fenced`` is True when every live node confirmed the new version before
    the call returned; otherwise ``lagging_nodes`` lists those that did not
    and ``propagation`` says why ("timeout", "redis-unavailable", "not-waited").
    """

    status: MaintenanceStatus
    fenced: bool
    propagation: str
    applied_nodes: tuple[str, ...] = ()
    lagging_nodes: tuple[dict[str, Any], ...] = ()
    waited_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "status": self.status.to_dict(),
            "fenced": self.fenced,
            "propagation": self.propagation,
            "applied_nodes": list(self.applied_nodes),
            "lagging_nodes": list(self.lagging_nodes),
            "waited_seconds": round(self.waited_seconds, 6),
            **self.details,
        }


class AckWaiter:
    """A standing subscription to node acks, made *before* publishing.

    Kept open between activations (a fresh SUBSCRIBE costs a connection and a
    round trip); acks left over from earlier versions are skipped by version.
    An ack can be missed: redis-py silently reconnects a broken subscription
    (a Redis restart, a Sentinel failover), and a node whose pub/sub is down
    acknowledges from its re-validation timer. Every ack is also written to
    the registry, so whenever the channel is quiet for ``RECHECK`` seconds,
    or breaks, the registry is read again.
    """

    #: Seconds of silence before the registry is read again (acks normally
    #: arrive within milliseconds, so the common path never pays for it).
    RECHECK = 0.25

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.client = client
        self.keys = keys
        self.broken = False
        self.pubsub = self._subscribe()

    def _subscribe(self) -> redis.client.PubSub:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.keys.acks)
        return pubsub

    def wait(
        self,
        registry: NodeRegistry,
        version: int,
        timeout: float,
        node_ttl: float,
        already: set[str],
    ) -> tuple[tuple[str, ...], tuple[NodeInfo, ...], float]:
        """Block until every live node reports ``version`` (or ``timeout``)."""
        start = time.perf_counter()
        live = registry.live_nodes(node_ttl)
        applied = {n for n, info in live.items() if info.applied_version >= version} | already
        pending = set(live) - applied
        deadline = start + timeout
        while pending:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                message = self.pubsub.get_message(timeout=min(remaining, self.RECHECK))
            except REDIS_ERRORS:
                # Subscribe again first, then read the registry: no ack falls between.
                self.close()
                self.pubsub = self._subscribe()
                message = None
            if message is None:
                now_live = registry.live_nodes(node_ttl)
                caught_up = {
                    n
                    for n, info in now_live.items()
                    if n in pending and info.applied_version >= version
                }
                # A node whose heartbeat lapsed meanwhile (it died just before or during
                # the wait) is no longer live: nothing is left to wait for from it.
                pending -= caught_up | (pending - now_live.keys())
                applied |= caught_up
                continue
            if message.get("type") != "message":
                continue
            data = message["data"]
            node_id, _, raw_version = (
                data.decode() if isinstance(data, bytes) else data
            ).rpartition(" ")
            if raw_version.isdigit() and int(raw_version) >= version:
                pending.discard(node_id)
                applied.add(node_id)
        waited = time.perf_counter() - start
        lagging = tuple(live[n] for n in sorted(pending))
        return tuple(sorted(applied & set(live))), lagging, waited

    def close(self) -> None:
        """Drop the subscription."""
        with contextlib.suppress(*REDIS_ERRORS):
            self.pubsub.close()


def publish_fenced(
    *,
    bus: StatusBus,
    registry: NodeRegistry,
    status: MaintenanceStatus,
    wait: float,
    node_ttl: float,
    waiter_factory: Callable[[], AckWaiter],
    local_apply: Callable[[MaintenanceStatus], str | None] | None = None,
) -> ActivationResult:
    """Publish ``status`` and, if ``wait`` > 0, wait for every live node to apply it.

    ``waiter_factory()`` returns a subscribed ``AckWaiter`` (or raises a Redis error).
    """
    waiter: AckWaiter | None = None
    try:
        if wait > 0:
            waiter = waiter_factory()
        bus.publish(status)
        already: set[str] = set()
        if local_apply is not None:
            node_id = local_apply(status)
            if node_id:
                already.add(node_id)
        if waiter is None:
            return ActivationResult(status=status, fenced=False, propagation="not-waited")
        applied, lagging, waited = waiter.wait(registry, status.version, wait, node_ttl, already)
        return ActivationResult(
            status=status,
            fenced=not lagging,
            propagation="fenced" if not lagging else "timeout",
            applied_nodes=applied,
            lagging_nodes=tuple(n.to_dict() for n in lagging),
            waited_seconds=waited,
        )
    except REDIS_ERRORS as exc:
        if waiter is not None:
            waiter.close()
            waiter.broken = True
        return ActivationResult(
            status=status,
            fenced=False,
            propagation="redis-unavailable",
            details={
                "propagation_error": str(exc).splitlines()[0] if str(exc) else "error",
                "note": "nodes pick the change up from SQL on their next poll",
            },
        )
