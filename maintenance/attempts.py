"""Blocked-attempt accounting: counters and per-minute rates in Redis, a sampled log in SQL.

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

from sqlalchemy import func, insert, select

from .domain.modes import OperationType
from .domain.status import utcnow
from .errors import StoreUnavailable
from .redisconn import REDIS_ERRORS
from .store import schema

if TYPE_CHECKING:
    from .service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.attempts")
COUNTER_TTL = 30 * 24 * 3600
RATE_TTL = 2 * 3600


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

    def __init__(self, service: EnhancedMaintenanceModeService, sample: int = 1) -> None:
        self.service = service
        self.sample = max(1, sample)
        self._seq = itertools.count()
        self._queue: queue.Queue[BlockedAttempt] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0

    def record(self, attempt: BlockedAttempt) -> None:
        """Count ``attempt`` (one pipelined write) and queue it for the SQL log."""
        keys = self.service.keys
        activation = attempt.activation_id or "none"
        op = attempt.operation.value
        minute = int(time.time() // 60)
        try:
            pipe = self.service.redis.pipeline(transaction=False)
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
            with self.service.db.begin() as conn:
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


def blocked_counters(service: EnhancedMaintenanceModeService, activation_id: str) -> dict[str, int]:
    """Blocked attempts of one activation per operation (Redis counters: every attempt)."""
    ops = [op.value for op in OperationType]
    values = service.redis.mget([service.keys.blocked_counter(activation_id, op) for op in ops])
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
