"""What the fleet reports during an emergency: running jobs, each worker's ladder, counts.

Workers write here (``workers.emergency``); activation, progress, deactivation
checks and reports read it. Everything is in Redis with a TTL; what must
survive a Redis restart (each stopped job, each phase) is also in SQL.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..redisconn import REDIS_ERRORS

if TYPE_CHECKING:
    from ..nodes import NodeInfo
    from ..service import EnhancedMaintenanceModeService

TTL = 7 * 24 * 3600
#: Ladder states after which a worker has nothing left to do.
DONE_STATES = frozenset({"done", "cannot-terminate", "cancelled"})


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class RunningEntry:
    """One entry of the active-job registry, as the core reads it."""

    task_id: str
    name: str
    operation: str
    worker: str | None
    node: str | None
    started: float
    state: str


def registry_entries(service: EnhancedMaintenanceModeService) -> list[RunningEntry]:
    """Every running job in the registry (queued continuations are not running)."""
    out = []
    for task_id, raw in service.redis.hgetall(service.keys.active_jobs).items():
        try:
            data: dict[str, Any] = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if data.get("state", "running") != "running":
            continue
        out.append(
            RunningEntry(
                task_id=_text(task_id),
                name=str(data.get("name") or "?"),
                operation=str(data.get("operation") or "unknown"),
                worker=data.get("worker"),
                node=data.get("node"),
                started=float(data.get("started") or 0.0),
                state="running",
            )
        )
    return sorted(out, key=lambda e: e.started)


@dataclass
class WorkerProgress:
    """How far one worker main process got with its termination ladder."""

    node: str
    hostname: str | None = None
    pool: str | None = None
    can_terminate: bool = True
    state: str = "grace"  # grace | terminating | done | cannot-terminate | cancelled
    plan_id: str | None = None
    running: int = 0
    terminated: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    unterminable: list[str] = field(default_factory=list)
    updated: float = 0.0

    @property
    def done(self) -> bool:
        """Whether this worker has nothing left to do."""
        return self.state in DONE_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def write_progress(
    service: EnhancedMaintenanceModeService, emergency_id: str, progress: WorkerProgress
) -> None:
    """Publish one worker's progress (fleet-visible)."""
    progress.updated = time.time()
    key = service.keys.emergency_progress(emergency_id)
    pipe = service.redis.pipeline(transaction=False)
    pipe.hset(key, progress.node, json.dumps(progress.to_dict()))
    pipe.expire(key, TTL)
    pipe.execute()


def read_progress(
    service: EnhancedMaintenanceModeService, emergency_id: str
) -> dict[str, WorkerProgress]:
    """Every worker's progress by node id."""
    out = {}
    for node, raw in service.redis.hgetall(service.keys.emergency_progress(emergency_id)).items():
        try:
            data = json.loads(raw)
            out[_text(node)] = WorkerProgress(**data)
        except (TypeError, ValueError):
            continue
    return out


def add_counts(service: EnhancedMaintenanceModeService, emergency_id: str, **counts: int) -> None:
    """Add to the fleet-wide outcome counters."""
    key = service.keys.emergency_counts(emergency_id)
    pipe = service.redis.pipeline(transaction=False)
    for name, n in counts.items():
        if n:
            pipe.hincrby(key, name, n)
    pipe.expire(key, TTL)
    pipe.execute()


def read_counts(service: EnhancedMaintenanceModeService, emergency_id: str) -> dict[str, int]:
    """Outcome counters (empty when Redis is unreachable)."""
    try:
        raw = service.redis.hgetall(service.keys.emergency_counts(emergency_id))
    except REDIS_ERRORS:
        return {}
    return {_text(k): int(v) for k, v in raw.items()}


def claim(service: EnhancedMaintenanceModeService, emergency_id: str, step: str) -> bool:
    """True for the one caller, fleet-wide, that gets to perform ``step``."""
    key = service.keys.emergency_claim(emergency_id, step)
    return bool(service.redis.set(key, str(time.time()), nx=True, ex=TTL))


def live_workers(service: EnhancedMaintenanceModeService) -> dict[str, NodeInfo]:
    """Live worker main processes by node id."""
    return {node_id: n for node_id, n in service.nodes().items() if n.kind == "worker"}


def unfinished_workers(
    service: EnhancedMaintenanceModeService, emergency_id: str, plan_id: str | None = None
) -> list[tuple[str, str]]:
    """``(hostname or node, state)`` of live workers whose ladder (of ``plan_id``) is not done."""
    progress = read_progress(service, emergency_id)
    out = []
    for node_id, info in live_workers(service).items():
        mine = progress.get(node_id)
        if mine is not None and plan_id is not None and mine.plan_id != plan_id:
            mine = None  # an earlier round's progress
        if mine is None or not mine.done:
            name = str(info.info.get("hostname") or node_id)
            out.append((name, mine.state if mine else "not started"))
    return out
