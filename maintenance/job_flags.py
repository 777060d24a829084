"""What the control plane tells running jobs through Redis: allowed to complete whatever
the mode (``{p}:jobs:allowed``), asked to stop (``{p}:jobs:abort:<id>``), and the
fleet-wide stop of an emergency (``{p}:jobs:abort:all``)."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from .keys import Keys


class JobFlags:
    """Reads and writes of the per-job flags, with an explicit client."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def allow_completion(self, task_id: str, ttl: int) -> None:
        """Let ``task_id`` finish whatever happens (the whole set expires after ``ttl``)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(self.keys.completion_allowed, task_id)
        pipe.expire(self.keys.completion_allowed, ttl)
        pipe.execute()

    def completion_allowed(self, task_id: str) -> bool:
        """Whether ``task_id`` may finish whatever happens."""
        return bool(self.client.sismember(self.keys.completion_allowed, task_id))

    def completion_allowed_many(self, task_ids: Sequence[str]) -> list[bool]:
        """``completion_allowed`` for each of ``task_ids`` (one round trip)."""
        if not task_ids:
            return []
        return [bool(v) for v in self.client.smismember(self.keys.completion_allowed, task_ids)]

    def request_abort(self, task_id: str, ttl: int) -> None:
        """Ask one running job to stop cooperatively."""
        self.client.set(self.keys.abort_flag(task_id), "1", ex=ttl)

    def poll(self, task_id: str, *, completion: bool) -> tuple[bool, bool]:
        """``(asked to stop, allowed to complete)`` of ``task_id`` in one round trip; the
        second is read only with ``completion`` (else False)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self.keys.abort_flag(task_id))
        if completion:
            pipe.sismember(self.keys.completion_allowed, task_id)
        told, *allowed = pipe.execute()
        return bool(told), bool(allowed and allowed[0])

    def abort_all(self, emergency_id: str, ttl: int) -> None:
        """Say that every running job is asked to stop (an emergency's termination round)."""
        self.client.set(self.keys.abort_all, emergency_id, ex=ttl)

    def clear_abort_all(self) -> None:
        """The emergency is over."""
        self.client.delete(self.keys.abort_all)
