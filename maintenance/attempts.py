"""Blocked-attempt accounting: counters and per-minute rates in Redis, a sampled log in SQL.

Owner of ``{p}:blocked:*``, ``{p}:wouldblock:*`` and ``maintenance_blocked_attempts``.

The caller's cost is one pipelined Redis write; the SQL rows are written by a
background thread in batches, so a slow or absent database never delays a
request or a publish.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import delete, func, insert, select, text

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
_OPS = tuple(op.value for op in OperationType)


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


class AttemptRecorder:
    """Counts attempts in Redis now and logs a sample of them to SQL soon."""

    def __init__(self, client: redis.Redis, keys: Keys, db: Database, sample: int = 1) -> None:
        self.client = client
        self.keys = keys
        self.db = db
        self.sample = max(1, sample)
        self._seq = itertools.count()
        self._queue: queue.Queue[BlockedAttempt] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0

    def record(self, attempt: BlockedAttempt) -> None:
        """Count ``attempt`` (one pipelined write) and queue it for the SQL log."""
        keys = self.keys
        activation = attempt.activation_id or "none"
        op = attempt.operation.value
        minute = int(time.time() // 60)
        try:
            pipe = self.client.pipeline(transaction=False)
            if attempt.would_block:
                pipe.incr(keys.would_block_counter(activation, op))
                pipe.expire(keys.would_block_counter(activation, op), COUNTER_TTL)
            else:
                pipe.incr(keys.blocked_counter(activation, op))
                pipe.expire(keys.blocked_counter(activation, op), COUNTER_TTL)
                pipe.incr(keys.blocked_rate(op, minute))
                pipe.expire(keys.blocked_rate(op, minute), RATE_TTL)
            pipe.execute()
        except REDIS_ERRORS as exc:
            log.debug("blocked-attempt counter not written: %s", exc)
        if next(self._seq) % self.sample == 0:
            self._enqueue(attempt)

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
        while True:
            batch = [self._queue.get()]
            while len(batch) < 500:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
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
        """Wait until every queued attempt is in SQL (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks


def rates(service: EnhancedMaintenanceModeService, minutes: int = 10) -> dict[str, list[int]]:
    """Blocked attempts per operation for each of the last ``minutes`` minutes (oldest first)."""
    now = int(time.time() // 60)
    ops = [op.value for op in OperationType]
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


def blocked_counters(client: redis.Redis, keys: Keys, activation_id: str) -> dict[str, int]:
    """Blocked attempts of one activation per operation (Redis counters: every attempt)."""
    return _counters(client, [keys.blocked_counter(activation_id, op) for op in _OPS])


def would_block_counters(client: redis.Redis, keys: Keys, activation_id: str) -> dict[str, int]:
    """TEST-mode attempts of one activation that would have been blocked, per operation."""
    return _counters(client, [keys.would_block_counter(activation_id, op) for op in _OPS])


def clear_would_block(client: redis.Redis, keys: Keys, activation_id: str) -> None:
    """Forget the would-block counts of one activation (a rehearsal starting over)."""
    client.delete(*[keys.would_block_counter(activation_id, op) for op in _OPS])


def _counters(client: redis.Redis, names: list[str]) -> dict[str, int]:
    values = client.mget(names)
    return {op: int(v) for op, v in zip(_OPS, values, strict=True) if v}


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
