"""A node's acknowledgement that it applied a status version, sent without waiting.

Every node answers every status change: it records the version it applied in the
registry and announces it on the acks channel (``NodeRegistry.report_applied``). Waiting
for Redis's reply to that write costs each node a second wake-up per change -- on a
host with more processes than cores, the part of a fan-out that grows with the fleet.
Nothing needs the reply: a fenced activation counts the announcements, and reads the
registry again whenever they go quiet (``fencing.AckWaiter``); the heartbeat writes the
applied version every second anyway.

So the acks go over a connection of their own on which the node has told Redis not to
reply (``CLIENT REPLY OFF``, Redis 3.2+), checked when the connection is made; where
the server (or a proxy in front of it) refuses that, acks are sent the plain way. Behind
Sentinel they are always sent the plain way: after a failover a connection to the old
master would take writes it refuses, and without replies nobody would know. The cache
drops the connection whenever it finds Redis unreachable or subscribes again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from redis.sentinel import SentinelConnectionPool

from .keys import Keys
from .nodes import NodeRegistry
from .redisconn import REDIS_ERRORS

log = logging.getLogger("maintenance.acks")


class AckSender:
    """Sends ``HSET applied`` + ``PUBLISH acks`` for one node without reading a reply."""

    def __init__(self, client: redis.Redis, keys: Keys, registry: NodeRegistry) -> None:
        self.client = client
        self.keys = keys
        self.registry = registry
        self._conn: Any = None
        #: False behind Sentinel, or once the server refused ``CLIENT REPLY OFF``: acks
        #: then go the plain way.
        self.quiet = not isinstance(client.connection_pool, SentinelConnectionPool)
        self._lock = threading.Lock()

    def send(self, node_id: str, version: int) -> None:
        """Record and announce that ``node_id`` applied ``version``; raises a Redis error
        only when Redis cannot be reached (after one reconnect)."""
        if not self.quiet:
            self.registry.report_applied(node_id, version)
            return
        with self._lock:
            try:
                self._send(node_id, version)
            except REDIS_ERRORS:
                self._drop()  # a connection closed while idle: one fresh try
                self._send(node_id, version)
        if not self.quiet:  # found out just now: this ack still has to go
            self.registry.report_applied(node_id, version)

    def _send(self, node_id: str, version: int) -> None:
        conn = self._conn or self._connect()
        if conn is None:
            return
        keys = self.keys
        conn.send_packed_command(
            conn.pack_commands(
                [
                    ("HSET", keys.node_applied, node_id, version),
                    ("PUBLISH", keys.acks, f"{node_id} {version}"),
                ]
            ),
            check_health=False,  # a health check would wait for a PING reply that never comes
        )

    def _connect(self) -> Any:
        conn = self.client.connection_pool.make_connection()
        conn.connect()
        # OFF has no reply when it works; ON's "OK" then is the first thing to come back.
        conn.send_packed_command(
            conn.pack_commands([("CLIENT", "REPLY", "OFF"), ("CLIENT", "REPLY", "ON")])
        )
        try:
            answer = conn.read_response()
        except redis.ResponseError as exc:
            log.info("maintenance: acks wait for replies (CLIENT REPLY refused: %s)", exc)
            conn.disconnect()
            self.quiet = False
            return None
        if answer not in (b"OK", "OK"):
            conn.disconnect()
            self.quiet = False
            return None
        conn.send_command("CLIENT", "REPLY", "OFF", check_health=False)
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()

    def close(self) -> None:
        """Close the connection (it is made again on the next ack)."""
        with self._lock:
            self._drop()
