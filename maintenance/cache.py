"""The per-process status cache: hot paths read it without touching the network.

A background thread keeps it current: Redis pub/sub delivers changes within
milliseconds; a timer re-validates (Redis GET, SQL cross-check) in case a
message was missed, heartbeats the node registry and rebuilds Redis from SQL
after a restart. When Redis is down it polls SQL; when SQL is down too it
keeps the last known status. Every degradation is logged and visible.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .acks import AckSender
from .bus import StatusBus
from .domain.status import MaintenanceStatus
from .errors import StoreUnavailable
from .keys import Keys
from .nodes import NodeRegistry, new_node_id
from .redisconn import REDIS_ERRORS, describe_redis_error, make_client
from .store.state import StateStore

log = logging.getLogger("maintenance.cache")

Listener = Callable[[MaintenanceStatus], None]


@dataclass(frozen=True)
class Health:
    """Whether this process can reach the bus and the system of record."""

    redis_ok: bool = True
    sql_ok: bool = True
    redis_error: str | None = None
    sql_error: str | None = None
    last_sync: float = 0.0

    @property
    def degraded(self) -> bool:
        """True when either Redis or SQL is unreachable."""
        return not (self.redis_ok and self.sql_ok)

    @property
    def reason(self) -> str | None:
        """Why the process is degraded, in one line."""
        parts = []
        if not self.redis_ok:
            parts.append(f"Redis unavailable ({self.redis_error}); polling SQL")
        if not self.sql_ok:
            parts.append(f"SQL unavailable ({self.sql_error}); using last known status")
        return "; ".join(parts) or None


_caches: weakref.WeakSet[StatusCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_caches):
        cache._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class StatusCache:
    """Holds the newest ``MaintenanceStatus`` this process has seen.

    ``status`` is a plain attribute swap, safe to read from any thread without
    a lock. ``kind`` names the node (``web``, ``worker``, ``beat``, ``cli``); a
    ``register``-ing cache heartbeats and reports applied versions so fenced
    activations can wait for it.
    """

    def __init__(
        self,
        *,
        redis_url: str,
        keys: Keys,
        state: StateStore,
        kind: str = "node",
        register: bool = True,
        revalidate_interval: float = 1.0,
        sql_check_interval: float = 5.0,
        heartbeat_interval: float = 1.0,
        redis_timeout: float = 1.0,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.keys = keys
        self.state = state
        self.kind = kind
        self.register = register
        self.revalidate_interval = revalidate_interval
        self.sql_check_interval = sql_check_interval
        self.heartbeat_interval = heartbeat_interval
        self.redis_timeout = redis_timeout
        self.info = dict(info or {})
        self.status: MaintenanceStatus = MaintenanceStatus()
        self.health = Health()
        self.node_id = new_node_id(kind)
        self.started = False
        #: Start again right after a fork when started before it (web servers that fork
        #: their workers from a loaded app: each worker registers before its first request).
        self.start_after_fork = False
        self._listeners: dict[int, Listener] = {}
        self._next_listener = 0
        #: Called after each heartbeat of a registered node (errors logged, never raised).
        self.heartbeat_hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._init_clients()
        _caches.add(self)

    # -- lifecycle -------------------------------------------------------------
    def _init_clients(self) -> None:
        self.client = make_client(self.redis_url, timeout=self.redis_timeout)
        self.bus = StatusBus(self.client, self.keys)
        self.registry = NodeRegistry(self.client, self.keys)
        self.acks = AckSender(self.client, self.keys, self.registry)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded = threading.Event()

    def start(self) -> StatusCache:
        """Load the status now and keep it current from a daemon thread (idempotent)."""
        with self._start_lock:
            if self.started:
                return self
            self.started = True
            self.refresh()
            self._thread = threading.Thread(
                target=self._run, name=f"maintenance-cache-{self.kind}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and leave the registry."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self.register:
            with contextlib.suppress(*REDIS_ERRORS):
                self.registry.deregister(self.node_id)
        self.acks.close()
        self.started = False

    def _after_fork(self) -> None:
        # Threads do not survive fork(): become a fresh node of the same kind, started
        # lazily by the first reader (see EnhancedMaintenanceModeService), or at once
        # when ``start_after_fork`` asks for it.
        restart = self.started and self.start_after_fork
        self.node_id = new_node_id(self.kind)
        self.started = False
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._init_clients()
        self.state.db.after_fork()
        if restart:
            try:
                self.start()
            except Exception as exc:  # the first reader tries again
                self.started = False
                log.warning("maintenance: status cache not started after fork: %s", exc)

    # -- listeners -------------------------------------------------------------
    def add_listener(self, callback: Listener) -> int:
        """Call ``callback(status)`` on every change; returns an id for ``remove_listener``."""
        with self._lock:
            self._next_listener += 1
            self._listeners[self._next_listener] = callback
            return self._next_listener

    def remove_listener(self, listener_id: int) -> bool:
        """Stop calling a listener; False if the id is unknown."""
        with self._lock:
            return self._listeners.pop(listener_id, None) is not None

    # -- applying --------------------------------------------------------------
    def apply(self, status: MaintenanceStatus) -> bool:
        """Adopt ``status`` if it is newer; True when it changed this process."""
        with self._lock:
            if status.version <= self.status.version and self._loaded.is_set():
                return False
            self.status = status
            self._loaded.set()
            listeners = list(self._listeners.values())
        for callback in listeners:
            try:
                callback(status)
            except Exception:  # a failing listener never breaks propagation
                log.exception("status listener %r failed", callback)
        return True

    def _report(self, version: int) -> None:
        if self.register:
            self.acks.send(self.node_id, version)

    # -- re-validation -----------------------------------------------------------
    def refresh(self) -> MaintenanceStatus:
        """One synchronous re-validation pass (Redis, else SQL); never raises."""
        try:
            self._refresh_from_redis()
        except REDIS_ERRORS as exc:
            self._redis_down(exc)
            self._refresh_from_sql()
        return self.status

    def _refresh_from_redis(self) -> None:
        current = self.bus.read()
        if current is None:
            # Redis restarted empty (or was flushed): rebuild it from SQL.
            self._refresh_from_sql(republish=True)
        elif current.version < self.status.version and self._loaded.is_set():
            # Redis went back in time: a Sentinel failover promoted a replica that
            # had not received the last write. Put back what SQL said (the script
            # only ever moves the key forward, so a racing writer is safe).
            self._redis_up()
            self.bus.publish(self.status)
            self._report(self.status.version)
        else:
            self._redis_up()
            if self.apply(current):
                self._report(current.version)

    def _refresh_from_sql(self, republish: bool = False) -> None:
        try:
            stored = self.state.load()
        except StoreUnavailable as exc:
            self._sql_down(exc)
            return
        self._sql_up()
        if (self.apply(stored) or republish) and (self.health.redis_ok or republish):
            try:
                self.bus.publish(self.status)
                self._redis_up()
                self._report(self.status.version)
            except REDIS_ERRORS as exc:
                self._redis_down(exc)

    def _redis_down(self, exc: BaseException) -> None:
        if self.health.redis_ok:
            log.warning(
                "maintenance: Redis unavailable (%s); falling back to SQL polling",
                describe_redis_error(exc),
            )
        self.health = Health(
            redis_ok=False,
            sql_ok=self.health.sql_ok,
            redis_error=describe_redis_error(exc),
            sql_error=self.health.sql_error,
            last_sync=self.health.last_sync,
        )

    def _redis_up(self) -> None:
        if not self.health.redis_ok:
            log.warning("maintenance: Redis is reachable again")
        self.health = Health(
            redis_ok=True,
            sql_ok=self.health.sql_ok,
            sql_error=self.health.sql_error,
            last_sync=time.time(),
        )

    def _sql_down(self, exc: BaseException) -> None:
        if self.health.sql_ok:
            log.warning("maintenance: SQL unavailable (%s); keeping last known status", exc)
        self.health = Health(
            redis_ok=self.health.redis_ok,
            sql_ok=False,
            redis_error=self.health.redis_error,
            sql_error=_short(exc),
            last_sync=self.health.last_sync,
        )

    def _sql_up(self) -> None:
        if not self.health.sql_ok:
            log.warning("maintenance: SQL is reachable again")
        self.health = Health(
            redis_ok=self.health.redis_ok,
            sql_ok=True,
            redis_error=self.health.redis_error,
            last_sync=time.time(),
        )

    # -- the thread ------------------------------------------------------------
    def _run(self) -> None:
        pubsub: redis.client.PubSub | None = None
        next_tick = next_sql = next_beat = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if pubsub is None:
                    self.acks.close()  # made again to wherever the client connects now
                    pubsub = self._subscribe()
                    self._refresh_from_redis()  # catch anything published meanwhile
                    self._heartbeat()
                wait = max(0.0, min(next_tick, next_beat) - now)
                message = pubsub.get_message(ignore_subscribe_messages=True, timeout=min(wait, 0.5))
                if message is not None and message.get("type") == "message":
                    status = MaintenanceStatus.from_json(message["data"])
                    self._redis_up()
                    if self.apply(status):
                        self._report(status.version)
                now = time.monotonic()
                if now >= next_beat:
                    self._heartbeat()
                    next_beat = now + self.heartbeat_interval
                if now >= next_tick:
                    self._refresh_from_redis()
                    next_tick = now + self.revalidate_interval
                if now >= next_sql and self.register:
                    # Followers (Celery pool children: hundreds per host) leave the
                    # cross-check to their registered parent: one SQL connection
                    # each would exhaust a PostgreSQL server's connection slots.
                    self._refresh_from_sql()
                    next_sql = now + self.sql_check_interval
            except REDIS_ERRORS as exc:
                self._redis_down(exc)
                _close(pubsub)
                pubsub = None
                self._refresh_from_sql()
                if not self.register:
                    self.state.db.engine.dispose()  # a follower keeps no SQL connection open
                self._stop.wait(self.revalidate_interval)
            except Exception:  # never let the cache thread die
                log.exception("maintenance cache thread error")
                _close(pubsub)
                pubsub = None
                self._stop.wait(self.revalidate_interval)
        _close(pubsub)

    def _subscribe(self) -> redis.client.PubSub:
        client = make_client(self.redis_url, timeout=self.redis_timeout, blocking=True)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.keys.changes)
        return pubsub

    def _announce(self) -> None:
        """Write this node's registry record (raises what Redis raises)."""
        info = {"kind": self.kind, "pid": os.getpid(), **self.info}
        self.registry.heartbeat(self.node_id, self.status.version, info)

    def _heartbeat(self) -> None:
        if self.register:
            self._announce()
            for hook in self.heartbeat_hooks:
                try:
                    hook()
                except REDIS_ERRORS:
                    raise
                except Exception:
                    log.exception("heartbeat hook %r failed", hook)

    def declare_hook(self, name: str) -> None:
        """Announce in this node's registry record that hook ``name`` is installed
        (``http``, ``publish``, ``worker``): a rehearsal names nodes lacking one."""
        hooks = self.info.setdefault("hooks", [])
        if name not in hooks:
            hooks.append(name)
            hooks.sort()
            if self.started and self.register:
                # At once, not at the next heartbeat: a rehearsal report built meanwhile
                # would name this node as one that cannot refuse.
                with contextlib.suppress(*REDIS_ERRORS):
                    self._announce()


def _close(pubsub: redis.client.PubSub | None) -> None:
    if pubsub is not None:
        with contextlib.suppress(*REDIS_ERRORS):
            pubsub.close()
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
