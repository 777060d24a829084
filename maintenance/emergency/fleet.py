"""What the fleet reports during an emergency: each worker's termination ladder, the outcome
counts, and the claims that make a step happen once fleet-wide.

Owner of ``{p}:emergency:<id>:progress``, ``:counts`` and ``:claim:<step>``. Workers
write here (``workers.emergency``); the controller, phases, deactivation checks and
reports read it. Everything has a TTL; what must survive a Redis restart (each
stopped job, each phase) is also in SQL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from ..keys import Keys
from ..nodes import NodeInfo
from ..redisconn import REDIS_ERRORS, as_text

TTL = 7 * 24 * 3600
#: Ladder states after which a worker has nothing left to do.
DONE_STATES = frozenset({"done", "cannot-terminate", "cancelled"})


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


class FleetBoard:
    """The emergency's fleet-visible Redis structures, with an explicit client."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def write_progress(self, emergency_id: str, progress: WorkerProgress) -> None:
        """Publish one worker's progress."""
        progress.updated = time.time()
        key = self.keys.emergency_progress(emergency_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, progress.node, json.dumps(progress.to_dict()))
        pipe.expire(key, TTL)
        pipe.execute()

    def read_progress(self, emergency_id: str) -> dict[str, WorkerProgress]:
        """Every worker's progress by node id."""
        out = {}
        raw = self.client.hgetall(self.keys.emergency_progress(emergency_id))
        for node, value in raw.items():
            try:
                out[as_text(node)] = WorkerProgress(**json.loads(value))
            except (TypeError, ValueError):
                continue
        return out

    def add_counts(self, emergency_id: str, **counts: int) -> None:
        """Add to the fleet-wide outcome counters."""
        key = self.keys.emergency_counts(emergency_id)
        pipe = self.client.pipeline(transaction=False)
        for name, n in counts.items():
            if n:
                pipe.hincrby(key, name, n)
        pipe.expire(key, TTL)
        pipe.execute()

    def read_counts(self, emergency_id: str) -> dict[str, int]:
        """Outcome counters (empty when Redis is unreachable)."""
        try:
            raw = self.client.hgetall(self.keys.emergency_counts(emergency_id))
        except REDIS_ERRORS:
            return {}
        return {as_text(k): int(v) for k, v in raw.items()}

    def claim(self, emergency_id: str, step: str) -> bool:
        """True for the one caller, fleet-wide, that gets to perform ``step``."""
        key = self.keys.emergency_claim(emergency_id, step)
        return bool(self.client.set(key, str(time.time()), nx=True, ex=TTL))


def live_workers(nodes: Mapping[str, NodeInfo]) -> dict[str, NodeInfo]:
    """The worker main processes among live ``nodes``, by node id."""
    return {node_id: n for node_id, n in nodes.items() if n.kind == "worker"}


def unfinished_workers(
    progress: Mapping[str, WorkerProgress],
    nodes: Mapping[str, NodeInfo],
    plan_id: str | None = None,
) -> list[tuple[str, str]]:
    """``(hostname or node, state)`` of live workers whose ladder (of ``plan_id``) is not
    done, from their ``progress`` and the live ``nodes``."""
    out = []
    for node_id, info in live_workers(nodes).items():
        mine = progress.get(node_id)
        if mine is not None and plan_id is not None and mine.plan_id != plan_id:
            mine = None  # an earlier round's progress
        if mine is None or not mine.done:
            name = str(info.info.get("hostname") or node_id)
            out.append((name, mine.state if mine else "not started"))
    return out
