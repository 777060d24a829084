"""The active-job registry: one Redis HASH (``{p}:jobs:active``) of the fleet's running and
about-to-run jobs, its one entry type and its one parser.

The Celery hooks write it (``task_prerun`` in the pool child, ``task_postrun`` /
``task_revoked`` wherever they fire), so it lives in Redis, never in process
memory. The drain, the emergency, the admin panel and rehearsals read it here.
Each entry names the worker main process (a node of the node registry) it
belongs to; entries of nodes that stopped heartbeating are reaped, which is how
a SIGKILLed worker's jobs leave the registry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import redis

from .domain.modes import OperationType
from .domain.status import MaintenanceStatus
from .keys import Keys
from .redisconn import as_text

if TYPE_CHECKING:
    from .service import EnhancedMaintenanceModeService

RUNNING = "running"
#: A continuation published during maintenance that has not started yet; keeps a
#: chain from looking drained between two of its steps.
QUEUED = "queued"
#: Queued entries older than this are forgotten (their message was lost or revoked).
QUEUED_MAX_AGE = 3600.0
#: How long the registry remembers that a job ended (a worker's main process may report a
#: job running for a moment after its pool child said it ended).
ENDED_TTL = 600.0


@dataclass(frozen=True)
class ActiveJob:
    """One registry entry."""

    task_id: str
    name: str
    operation: str
    worker: str | None = None  # Celery node name, ``w1@host``
    node: str | None = None  # node-registry id of the worker main process
    pid: int | None = None
    started: float = 0.0  # unix seconds
    state: str = RUNNING
    activation_id: str | None = None

    @property
    def running(self) -> bool:
        """Started already (a ``QUEUED`` continuation has not)."""
        return self.state != QUEUED

    def age(self, now: float) -> float:
        """Seconds since it started (or was queued)."""
        return max(0.0, now - self.started)

    def to_json(self) -> str:
        """Compact JSON for the hash value."""
        data = asdict(self)
        del data["task_id"]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, task_id: str, raw: str | bytes) -> ActiveJob | None:
        """Parse a hash value; None for a torn or foreign one. Missing fields get
        defaults and unknown keys (from newer writers) are ignored."""
        try:
            data: dict[str, Any] = json.loads(raw)
            return cls(
                task_id=task_id,
                name=str(data.get("name") or "?"),
                operation=str(data.get("operation") or OperationType.UNKNOWN.value),
                worker=data.get("worker"),
                node=data.get("node"),
                pid=data.get("pid"),
                started=float(data.get("started") or 0.0),
                state=str(data.get("state") or RUNNING),
                activation_id=data.get("activation_id"),
            )
        except (ValueError, TypeError, AttributeError):
            return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the running time."""
        return {**asdict(self), "running_seconds": round(self.age(time.time()), 3)}


class JobRegistry:
    """Plain operations on the registry hash, with an explicit client."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.key = keys.active_jobs
        self.ended_key = keys.ended_jobs

    def add(self, job: ActiveJob) -> None:
        """Record that ``job`` runs (or, ``QUEUED``, is about to)."""
        self.client.hset(self.key, job.task_id, job.to_json())

    def remove(self, *task_ids: str) -> int:
        """Forget ``task_ids``; how many were there."""
        return int(self.client.hdel(self.key, *task_ids)) if task_ids else 0

    def end(self, task_id: str) -> None:
        """``task_id`` ended: forget it and remember, for ``ENDED_TTL``, that it ended
        (one transaction, so no reader sees it neither listed nor ended)."""
        now = time.time()
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.key, task_id)
        pipe.zadd(self.ended_key, {task_id: now})
        pipe.zremrangebyscore(self.ended_key, "-inf", now - ENDED_TTL)
        pipe.execute()

    def ended(self, task_ids: Iterable[str]) -> set[str]:
        """Those of ``task_ids`` that ended within ``ENDED_TTL`` (one round trip)."""
        ids = list(task_ids)
        if not ids:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for task_id in ids:
            pipe.zscore(self.ended_key, task_id)  # ZMSCORE needs Redis 6.2
        scores = pipe.execute()
        return {task_id for task_id, score in zip(ids, scores, strict=True) if score is not None}

    def count(self) -> int:
        """Number of entries (what status shows as ``active_jobs_count``)."""
        return int(self.client.hlen(self.key))

    def all(self) -> dict[str, ActiveJob]:
        """Every entry by task id (values that do not parse are left out)."""
        out = {}
        for raw_id, value in self.client.hgetall(self.key).items():
            job = ActiveJob.from_json(as_text(raw_id), value)
            if job is not None:
                out[job.task_id] = job
        return out

    def running(self) -> list[ActiveJob]:
        """Entries that started (queued continuations left out), oldest first."""
        return sorted((j for j in self.all().values() if j.running), key=lambda j: j.started)

    def listed(self, task_ids: Iterable[str]) -> list[bool]:
        """For each of ``task_ids``, whether it has an entry (one round trip)."""
        ids = list(task_ids)
        if not ids:
            return []
        return [value is not None for value in self.client.hmget(self.key, ids)]

    def of_blocked_types(self, status: MaintenanceStatus) -> list[ActiveJob]:
        """Entries whose operation type the current maintenance blocks, oldest first."""
        if not status.is_active or status.test_mode:
            return []
        blocked = {op.value for op in status.blocked_operations}
        return sorted(
            (job for job in self.all().values() if job.operation in blocked),
            key=lambda job: job.started,
        )

    def reap(self, live_nodes: Collection[str], grace: float) -> list[ActiveJob]:
        """Remove entries of worker nodes not in ``live_nodes`` for ``grace`` seconds, and
        queued entries older than ``QUEUED_MAX_AGE``; return them."""
        now = time.time()
        dead = [
            job
            for job in self.all().values()
            if (job.node is not None and job.node not in live_nodes and now - job.started > grace)
            or (job.state == QUEUED and now - job.started > QUEUED_MAX_AGE)
        ]
        self.remove(*[job.task_id for job in dead])
        return dead


def reap_dead_workers(service: EnhancedMaintenanceModeService) -> list[ActiveJob]:
    """Reap the entries of workers silent for twice the node TTL (so a slow heartbeat
    never costs a live job its entry), judged by ``service``'s node registry."""
    grace = service.settings.node_ttl * 2
    live = service.cache.registry.live_nodes(grace)
    return JobRegistry(service.redis, service.keys).reap(live, grace)
