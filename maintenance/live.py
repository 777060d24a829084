"""Live counters shown in status: running jobs, deferred jobs, stopped jobs needing an
operator, sessions, blocked attempts.

A reader only: the Redis counts come in one pipelined round trip from structures
their owners write (``job_registry``, ``session_index``, ``attempts``); the
deferred and needing-action jobs are counted by ``JobStore``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from .domain.operations import SEED_REGISTRY
from .errors import StoreUnavailable
from .keys import Keys
from .redisconn import REDIS_ERRORS, describe_redis_error
from .store.database import Database
from .store.jobs import DEFERRED, JobStore


@dataclass(frozen=True)
class LiveCounters:
    """Counters read at the time of a status request (not part of the versioned state)."""

    active_jobs_count: int = 0
    deferred_jobs_count: int = 0
    jobs_needing_action_count: int = 0
    invalidated_sessions: int = 0
    blocked_attempts: dict[str, int] = field(default_factory=dict)
    would_block_attempts: dict[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()


def read_counters(
    client: redis.Redis,
    keys: Keys,
    db: Database,
    activation_id: str | None,
    ops: Sequence[str] = SEED_REGISTRY.names(),
) -> LiveCounters:
    """Read every live counter (attempts per operation of ``ops``, the app's vocabulary);
    unreachable sources count as zero and are named in ``errors``."""
    errors: list[str] = []
    active = invalidated = 0
    blocked: dict[str, int] = {}
    would: dict[str, int] = {}
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hlen(keys.active_jobs)
        if activation_id:
            pipe.get(keys.invalidated_sessions(activation_id))
            pipe.mget([keys.blocked_counter(activation_id, op) for op in ops])
            pipe.mget([keys.would_block_counter(activation_id, op) for op in ops])
        results = pipe.execute()
        active = int(results[0] or 0)
        if activation_id:
            invalidated = int(results[1] or 0)
            blocked = {op: int(v) for op, v in zip(ops, results[2], strict=True) if v}
            would = {op: int(v) for op, v in zip(ops, results[3], strict=True) if v}
    except REDIS_ERRORS as exc:
        errors.append(f"redis: {describe_redis_error(exc)}")
    deferred = needing = 0
    try:
        store = JobStore(db)
        deferred = store.count(DEFERRED)
        needing = store.count_needing_action()
    except StoreUnavailable as exc:
        errors.append(f"sql: {exc}")
    return LiveCounters(
        active_jobs_count=active,
        deferred_jobs_count=deferred,
        jobs_needing_action_count=needing,
        invalidated_sessions=invalidated,
        blocked_attempts=blocked,
        would_block_attempts=would,
        errors=tuple(errors),
    )
