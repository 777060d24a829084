"""Pool children hand what they learn about stopped jobs to their worker's main process,
which writes it to SQL in batches.

A hundred pool children writing SQL at the same moment (every cooperative job
stopping within the same poll interval) would open a hundred database
connections; a Redis list per worker (``{p}:emergency:handoff:<node>``, owned
here) and one writer thread in the main process keep it at the main process's
own pool.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import fields
from typing import Any

import redis

from maintenance import EnhancedMaintenanceModeService
from maintenance.errors import MaintenanceError
from maintenance.keys import Keys
from maintenance.redisconn import REDIS_ERRORS, make_client
from maintenance.store.jobs import JobRecord

from . import outcomes

log = logging.getLogger("maintenance.emergency")
STOPPED, COMPLETED = "stopped", "completed"
BATCH = 500
_FIELDS = ("created_at", "updated_at", "id")


def encode(
    op: str, *, emergency_id: str | None, record: JobRecord | None = None, **extra: Any
) -> str:
    """One list entry; a record whose args are not JSON is kept as text and not rerun."""
    entry: dict[str, Any] = {"op": op, "emergency_id": emergency_id, **extra}
    if record is not None:
        data = {f.name: getattr(record, f.name) for f in fields(record) if f.name not in _FIELDS}
        entry["record"] = data
    try:
        return json.dumps(entry)
    except (TypeError, ValueError):
        if record is not None:
            entry["record"]["rerun_safe"] = False
        return json.dumps(entry, default=repr)


def decode_record(data: dict[str, Any]) -> JobRecord:
    """The ``JobRecord`` of an entry."""
    return JobRecord(**data)


def push(client: redis.Redis, keys: Keys, node: str, entry: str) -> None:
    """Hand one entry to worker ``node``'s main process."""
    client.rpush(keys.emergency_handoff(node), entry)


class HandoffWriter:
    """The main process's thread: waits on its list and writes each batch to SQL."""

    def __init__(self, service: EnhancedMaintenanceModeService, node: str, actor: str) -> None:
        self.service = service
        self.client = service.redis
        self.key = service.keys.emergency_handoff(node)
        self.actor = actor
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> HandoffWriter:
        """Start the daemon thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="maintenance-emergency-handoff", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current wait."""
        self._stop.set()

    def flush(self) -> int:
        """Write everything waiting now (the ladder does this before it reports done)."""
        written = 0
        while True:
            try:
                raw = self.client.lpop(self.key, BATCH)
            except REDIS_ERRORS as exc:
                log.warning("emergency handoff unreadable: %s", exc)
                return written
            if not raw:
                return written
            written += self._write(list(raw))

    def _run(self) -> None:
        client = None
        while not self._stop.is_set():
            try:
                client = client or make_client(self.service.redis_url, blocking=True)
                first = client.blpop([self.key], timeout=1)
            except REDIS_ERRORS as exc:
                log.debug("emergency handoff: Redis unavailable (%s)", exc)
                client = None
                self._stop.wait(1.0)
                continue
            if first is not None:
                self._write([first[1]])
                self.flush()

    def _write(self, raw: list[bytes | str]) -> int:
        with self._lock:
            entries = [json.loads(item) for item in raw]
            try:
                apply_entries(self.service, entries, self.actor)
            except MaintenanceError as exc:
                # SQL is down: back to the head of the list, tried again in a moment.
                log.error("emergency handoff not written (%s); retrying", exc)
                self.client.lpush(self.key, *reversed(raw))
                time.sleep(1.0)
                return 0
        return len(entries)


def apply_entries(
    service: EnhancedMaintenanceModeService, entries: list[dict[str, Any]], actor: str
) -> None:
    """Write handed-over entries to SQL: stopped jobs (one transaction per emergency), and
    jobs that finished their work after all."""
    stopped: dict[str | None, list[JobRecord]] = {}
    for entry in entries:
        if entry["op"] == STOPPED:
            stopped.setdefault(entry["emergency_id"], []).append(decode_record(entry["record"]))
    for emergency_id, records in stopped.items():
        outcomes.record_stopped(service, records, emergency_id=emergency_id, actor=actor)
    for entry in entries:
        if entry["op"] == COMPLETED and entry["emergency_id"]:
            outcomes.discard_if_completed(
                service, entry["task_id"], emergency_id=entry["emergency_id"]
            )
