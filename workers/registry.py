"""The active-job registry: one Redis HASH of running (and about-to-run) jobs fleet-wide.

``task_prerun``/``task_postrun`` fire in the pool child and ``task_revoked``
in the worker's main process (prefork), so the registry lives in Redis, never
in process memory. Each entry names the worker main process (a node of the
node registry) it belongs to; entries of nodes that stopped heartbeating are
reaped, which is how a SIGKILLed worker's jobs leave the registry.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from maintenance import EnhancedMaintenanceModeService, MaintenanceStatus

RUNNING = "running"
#: A continuation published during maintenance that has not started yet; keeps a
#: chain from looking drained between two of its steps.
QUEUED = "queued"
#: Queued entries older than this are forgotten (their message was lost or revoked).
QUEUED_MAX_AGE = 3600.0


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

    def to_json(self) -> str:
        """Compact JSON for the hash value."""
        data = asdict(self)
        del data["task_id"]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, task_id: str, raw: str | bytes) -> ActiveJob:
        """Parse a hash value; unknown keys from newer writers are ignored."""
        data: dict[str, Any] = json.loads(raw)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(task_id=task_id, **known)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the running time."""
        return {**asdict(self), "running_seconds": round(max(0.0, time.time() - self.started), 3)}


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class JobRegistry:
    """Plain operations on the registry hash with the service's client."""

    def __init__(self, service: EnhancedMaintenanceModeService) -> None:
        self.service = service
        self.client = service.redis
        self.key = service.keys.active_jobs

    def add(self, job: ActiveJob) -> None:
        """Record that ``job`` runs (or, ``QUEUED``, is about to)."""
        self.client.hset(self.key, job.task_id, job.to_json())

    def remove(self, task_id: str) -> bool:
        """Forget ``task_id``; True when it was there."""
        return bool(self.client.hdel(self.key, task_id))

    def count(self) -> int:
        """Number of entries (what status shows as ``active_jobs_count``)."""
        return int(self.client.hlen(self.key))

    def all(self) -> dict[str, ActiveJob]:
        """Every entry by task id."""
        raw = self.client.hgetall(self.key)
        out = {}
        for task_id, value in raw.items():
            tid = _text(task_id)
            try:
                out[tid] = ActiveJob.from_json(tid, value)
            except (ValueError, TypeError):
                continue  # a torn or foreign value: not ours to interpret
        return out

    def of_blocked_types(self, status: MaintenanceStatus) -> list[ActiveJob]:
        """Entries whose operation type the current maintenance blocks."""
        if not status.is_active or status.test_mode:
            return []
        blocked = {op.value for op in status.blocked_operations}
        return sorted(
            (job for job in self.all().values() if job.operation in blocked),
            key=lambda job: job.started,
        )

    def reap(self, grace: float | None = None) -> list[ActiveJob]:
        """Remove entries of worker nodes that stopped heartbeating; return them.

        A node counts as dead once silent for ``grace`` seconds (default: twice
        the node TTL, so a slow heartbeat never costs a live job its entry).
        """
        settings = self.service.settings
        grace = settings.node_ttl * 2 if grace is None else grace
        live = set(self.service.cache.registry.live_nodes(grace))
        now = time.time()
        dead = [
            job
            for job in self.all().values()
            if (job.node is not None and job.node not in live and now - job.started > grace)
            or (job.state == QUEUED and now - job.started > QUEUED_MAX_AGE)
        ]
        if dead:
            self.client.hdel(self.key, *[job.task_id for job in dead])
        return dead
