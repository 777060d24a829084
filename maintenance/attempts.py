"""Blocked-attempt accounting: counters and per-minute rates in Redis, a sampled log in SQL.

Owner of ``{p}:blocked:*``, ``{p}:wouldblock:*`` and ``maintenance_blocked_attempts``.

The caller's cost is a dictionary update under a lock: no network. A background
thread adds the pending counts to Redis in one pipeline within ``FLUSH_DELAY``
(``INCRBY`` per counter touched, however many attempts it sums: under a flood of
refusals a process writes at most one pipeline per ``FLUSH_DELAY``), and writes the
sampled SQL rows in batches, so neither Redis nor the database delays a request or
a publish. Counts are never lost to a failed write: they stay pending and go with
the next flush. Readers in this process flush first (``flush_counts``), so what they
read includes every attempt this process counted.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import delete, func, insert, select, text

from . import rehearsal_log
from .domain.modes import OperationType
from .domain.status import utcnow
from .errors import StoreUnavailable
from .keys import Keys
from .redisconn import REDIS_ERRORS
from .store import schema
from .store.database import Database

if TYPE_CHECKING:
    from .service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.attempts")
COUNTER_TTL = 30 * 24 * 3600
RATE_TTL = 2 * 3600
#: Seconds between the SQL log writer's looks at its queue: one transaction per second
#: at most, however many refusals a flood brings (``flush`` and ``close`` write at once).
SQL_LOG_INTERVAL = 1.0
#: Seconds the counter flusher waits after an attempt for more to sum into one write.
FLUSH_DELAY = 0.05


@dataclass(frozen=True)
class BlockedAttempt:
    """One refused (or, in TEST mode, would-be-refused) attempt."""

    operation: OperationType
    user: str | None = None
    endpoint: str | None = None
    method: str | None = None
    mode: str | None = None
    channel: str = "http"  # http | celery | login
    would_block: bool = False
    activation_id: str | None = None
    at: datetime = field(default_factory=utcnow)
    node: str | None = None  # the node whose gate judged it (rehearsals count per node)
    unjudged: tuple[str, str | None] | None = None  # (problem, publisher origin): no gate judged it


#: (would_block, activation, operation, minute, rehearsal detail) -> attempts not yet
#: added to Redis; the detail (``rehearsal_log.Detail``) only for would-be-blocked ones.
PendingKey = tuple[bool, str, str, int, rehearsal_log.Detail | None]


class AttemptRecorder:
    """Counts attempts in memory now, in Redis within ``flush_delay`` (plus a round
    trip), and logs a sample of them to SQL soon."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        db: Database,
        sample: int = 1,
        flush_delay: float = FLUSH_DELAY,
    ) -> None:
        self.client = client
        self.keys = keys
        self.db = db
        self.sample = max(1, sample)
        #: How long the flusher waits after the first pending attempt, to sum the next ones.
        self.flush_delay = flush_delay
        self._seq = itertools.count()
        self._queue: queue.Queue[BlockedAttempt] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending: dict[PendingKey, int] = {}
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._drain_now = threading.Event()
        self._flusher: threading.Thread | None = None
        self.dropped = 0

    def record(self, attempt: BlockedAttempt) -> None:
        """Count ``attempt`` (in memory; Redis within ``flush_delay`` plus a round trip)
        and queue a sample of them for the SQL log."""
        key = (
            attempt.would_block,
            attempt.activation_id or "none",
            attempt.operation.value,
            int(time.time() // 60),
            rehearsal_log.detail(attempt) if attempt.would_block else None,
        )
        with self._pending_lock:
            self._pending[key] = self._pending.get(key, 0) + 1
        flusher = self._flusher
        if flusher is None or not flusher.is_alive():
            self._start_flusher()
        self._wake.set()
        if next(self._seq) % self.sample == 0:
            self._enqueue(attempt)

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is None or not self._flusher.is_alive():
                self._stop.clear()
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="maintenance-attempt-counts", daemon=True
                )
                self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.wait(self.flush_delay):  # let a burst add up into one write
                break
            if not self.flush_counts():
                self._stop.wait(0.5)  # Redis unreachable: the counts wait for the next try
                self._wake.set()
        self.flush_counts()

    def pending(self) -> int:
        """Attempts counted here and not yet in Redis."""
        with self._pending_lock:
            return sum(self._pending.values())

    def flush_counts(self) -> bool:
        """Add every pending count to Redis now (one pipeline); False when Redis failed
        (the counts stay pending). Readers call it before reading the counters."""
        with self._flush_lock:
            with self._pending_lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return True
            keys = self.keys
            try:
                pipe = self.client.pipeline(transaction=False)
                for (would_block, activation, op, minute, detail), n in batch.items():
                    if would_block:
                        name = keys.would_block_counter(activation, op)
                        pipe.incrby(name, n)
                        pipe.expire(name, COUNTER_TTL)
                        if detail is not None:
                            rehearsal_log.count(pipe, keys, activation, op, detail, n)
                    else:
                        name = keys.blocked_counter(activation, op)
                        pipe.incrby(name, n)
                        pipe.expire(name, COUNTER_TTL)
                        rate = keys.blocked_rate(op, minute)
                        pipe.incrby(rate, n)
                        pipe.expire(rate, RATE_TTL)
                pipe.execute()
                return True
            except REDIS_ERRORS as exc:
                # A pipeline without MULTI can fail part-way: a retry may count some twice.
                # Losing counts is worse for "how many were refused"; retrying is the choice.
                log.debug("blocked-attempt counters not written yet: %s", exc)
                with self._pending_lock:
                    for key, n in batch.items():
                        self._pending[key] = self._pending.get(key, 0) + n
                return False

    def close(self, timeout: float = 2.0) -> None:
        """Flush what is pending and stop the flusher; the sampled attempts still queued
        for SQL are written (within ``timeout``) by the log writer."""
        self._stop.set()
        self._wake.set()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(timeout)
        self.flush_counts()
        writer = self._thread
        if writer is not None and writer.is_alive() and writer is not threading.current_thread():
            self._wait_written(timeout)

    def _enqueue(self, attempt: BlockedAttempt) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._drain, name="maintenance-attempts", daemon=True
                    )
                    self._thread.start()
        try:
            self._queue.put_nowait(attempt)
        except queue.Full:
            self.dropped += 1

    def _drain(self) -> None:
        # Polls instead of blocking in ``get``: a thread waiting on the queue would be
        # woken (a thread switch) by every ``put`` on the request path. ``flush`` and
        # ``close`` wake it early.
        while True:
            self._drain_now.wait(SQL_LOG_INTERVAL)
            self._drain_now.clear()
            while True:
                batch: list[BlockedAttempt] = []
                while len(batch) < 500:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if not batch:
                    break
                self._write(batch)

    def _write(self, batch: list[BlockedAttempt]) -> None:
        rows = [
            {
                "at": a.at,
                "user": a.user,
                "operation": a.operation.value,
                "endpoint": (a.endpoint or "")[:255] or None,
                "method": a.method,
                "mode": a.mode,
                "channel": a.channel,
                "would_block": a.would_block,
                "activation_id": a.activation_id,
            }
            for a in batch
        ]
        try:
            with self.db.begin() as conn:
                conn.execute(insert(schema.blocked_attempts), rows)
        except (StoreUnavailable, Exception) as exc:  # the log is best effort
            log.warning("could not write %d blocked attempt(s) to SQL: %s", len(rows), exc)
        finally:
            for _ in batch:
                self._queue.task_done()

    def flush(self, timeout: float = 5.0) -> bool:
        """Add the pending counts to Redis, and wait until every queued attempt is in
        SQL (tests, shutdown)."""
        self.flush_counts()
        return self._wait_written(timeout)

    def _wait_written(self, timeout: float) -> bool:
        """Wake the SQL log writer and wait until the queue is written (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            self._drain_now.set()
            time.sleep(0.005)
        return not self._queue.unfinished_tasks


def rates(service: EnhancedMaintenanceModeService, minutes: int = 10) -> dict[str, list[int]]:
    """Blocked attempts per operation for each of the last ``minutes`` minutes (oldest first)."""
    service.attempts.flush_counts()
    now = int(time.time() // 60)
    ops = service.operations.names()
    buckets = list(range(now - minutes + 1, now + 1))
    pipe = service.redis.pipeline(transaction=False)
    for op in ops:
        pipe.mget([service.keys.blocked_rate(op, m) for m in buckets])
    out: dict[str, list[int]] = {}
    for op, values in zip(ops, pipe.execute(), strict=True):
        series = [int(v or 0) for v in values]
        if any(series):
            out[op] = series
    return out


def logged_attempts(
    service: EnhancedMaintenanceModeService,
    activation_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest logged attempts, optionally of one activation."""
    table = schema.blocked_attempts
    query = select(table).order_by(table.c.id.desc()).limit(limit)
    if activation_id:
        query = query.where(table.c.activation_id == activation_id)
    with service.db.connect() as conn:
        return [{**row._mapping, "at": row.at.isoformat()} for row in conn.execute(query).all()]


def blocked_counters(
    client: redis.Redis, keys: Keys, activation_id: str, ops: Sequence[str]
) -> dict[str, int]:
    """Blocked attempts of one activation per operation of ``ops`` (Redis counters: every
    attempt)."""
    return _counters(client, ops, [keys.blocked_counter(activation_id, op) for op in ops])


def would_block_counters(
    client: redis.Redis, keys: Keys, activation_id: str, ops: Sequence[str]
) -> dict[str, int]:
    """TEST-mode attempts of one activation that would have been blocked, per operation."""
    return _counters(client, ops, [keys.would_block_counter(activation_id, op) for op in ops])


def clear_would_block(
    client: redis.Redis, keys: Keys, activation_id: str, ops: Sequence[str]
) -> None:
    """Forget the would-block counts of one activation (a rehearsal starting over)."""
    client.delete(*[keys.would_block_counter(activation_id, op) for op in ops])


def _counters(client: redis.Redis, ops: Sequence[str], names: list[str]) -> dict[str, int]:
    values = client.mget(names)
    return {op: int(v) for op, v in zip(ops, values, strict=True) if v}


def counts_by_operation(
    service: EnhancedMaintenanceModeService, activation_id: str
) -> dict[str, int]:
    """Logged attempts of one activation per operation (from SQL: survives Redis restarts)."""
    table = schema.blocked_attempts
    query = (
        select(table.c.operation, func.count())
        .where(table.c.activation_id == activation_id, table.c.would_block.is_(False))
        .group_by(table.c.operation)
    )
    with service.db.connect() as conn:
        return {op: int(n) for op, n in conn.execute(query).all()}


@dataclass(frozen=True)
class WouldBlockLog:
    """What the SQL log holds of one rehearsal's would-be-blocked attempts."""

    by_operation_and_channel: list[tuple[str, str, int]]
    top_endpoints: list[tuple[str | None, str, int]]  # (endpoint, operation, attempts)
    distinct_users: int


def would_block_log(db: Database, activation_id: str, top: int = 10) -> WouldBlockLog:
    """The logged would-be-blocked attempts of one activation, summed up."""
    table = schema.blocked_attempts
    where = (table.c.activation_id == activation_id, table.c.would_block.is_(True))
    with db.connect() as conn:
        by_op_channel = conn.execute(
            select(table.c.operation, table.c.channel, func.count())
            .where(*where)
            .group_by(table.c.operation, table.c.channel)
        ).all()
        top_endpoints = conn.execute(
            select(table.c.endpoint, table.c.operation, func.count().label("n"))
            .where(*where)
            .group_by(table.c.endpoint, table.c.operation)
            .order_by(text("n DESC"))
            .limit(top)
        ).all()
        users = conn.execute(
            select(func.count(func.distinct(table.c.user))).where(*where)
        ).scalar_one()
    return WouldBlockLog(
        by_operation_and_channel=[(op, ch, int(n)) for op, ch, n in by_op_channel],
        top_endpoints=[(e, op, int(n)) for e, op, n in top_endpoints],
        distinct_users=int(users),
    )


def delete_would_block_log(db: Database, activation_id: str) -> int:
    """Remove the logged would-be-blocked attempts of one activation; how many."""
    table = schema.blocked_attempts
    with db.begin() as conn:
        removed = conn.execute(
            delete(table).where(
                table.c.activation_id == activation_id, table.c.would_block.is_(True)
            )
        ).rowcount
    return int(removed or 0)
