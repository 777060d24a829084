"""Recovery requeue: republish held-back jobs exactly once, in order, under new task ids.

Order is the original publish order (the gate stamps a publish time; two
workers deferring side by side record them interleaved).

Each record is claimed by a conditional ``UPDATE ... WHERE state IN
('deferred', 'terminated')`` before it is published (``JobStore.claim_for_requeue``),
so two recoveries at once -- threads, processes or nodes -- never publish the
same job twice. A new id is mandatory: a revoked original id stays
blacklisted in workers for hours, and a custom Flower state on the old id
outranks later events. A Redis lock serialises recoveries so jobs go out in
their original order; without Redis the SQL claim alone keeps it exactly-once.

Owner of ``{p}:lock:recover`` and ``{p}:jobs:requeue-attempt:<id>``.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.lock import Lock

from maintenance import EnhancedMaintenanceModeService
from maintenance import events as maintenance_events
from maintenance.keys import Keys
from maintenance.redisconn import REDIS_ERRORS, as_text
from maintenance.store.jobs import JobRecord, JobStore

from . import flower
from .headers import REQUEUE_ATTEMPT, REQUEUED_FROM
from .internal_publish import internal_publish
from .records import RECORD_ONLY_OPTIONS, original_order

log = logging.getLogger("maintenance.celery")
LOCK_TTL = 300
#: How long a worker remembers the publish attempt of a requeued job it accepted.
ATTEMPT_TTL = 7 * 24 * 3600
#: A claim this old belongs to a recovery that died mid-way (a publish takes milliseconds).
STALE_CLAIM_SECONDS = 60.0


@dataclass
class RequeueReport:
    """What one recovery did."""

    requeued: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (old id, error)
    skipped: str | None = None  # why nothing was attempted
    recovery_completed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "requeued": [{"original_id": o, "new_id": n} for o, n in self.requeued],
            "failed": [{"original_id": o, "error": e} for o, e in self.failed],
            "skipped": self.skipped,
            "recovery_completed": self.recovery_completed,
        }


def publish_record(app: Any, record: JobRecord, new_id: str) -> None:
    """Publish ``record`` again under ``new_id`` into its original queue (gate bypassed).

    Each publish carries an attempt token: if a recovery died after publishing
    but before recording it, the copy a later recovery publishes under the same
    id is dropped by the worker that sees the second attempt (``is_second_copy``).
    """
    options = {k: v for k, v in record.options.items() if k not in RECORD_ONLY_OPTIONS}
    headers = dict(options.pop("headers", None) or {})
    headers[REQUEUED_FROM] = record.original_id
    headers[REQUEUE_ATTEMPT] = uuid.uuid4().hex
    if record.queue:
        options["queue"] = record.queue
    with internal_publish("recovery"):
        app.send_task(
            record.task_name,
            args=record.args,
            kwargs=record.kwargs,
            task_id=new_id,
            headers=headers,
            **options,
        )


def is_second_copy(client: redis.Redis, keys: Keys, task_id: str, attempt: str) -> bool:
    """Whether a worker receiving requeued ``task_id`` with ``attempt`` has a *second
    publish* of a job already accepted (raises what Redis raises).

    The first attempt a worker sees is remembered; the same attempt again is a
    redelivery (worker lost, visibility timeout) and runs; another attempt is the
    copy a later recovery published after one died mid-way, and is dropped.
    """
    key = keys.requeue_attempt(task_id)
    if client.set(key, attempt, nx=True, ex=ATTEMPT_TTL):
        return False
    seen = client.get(key)
    return seen is not None and as_text(seen) != attempt


def _recover_lock(client: redis.Redis, keys: Keys, wait: float) -> Lock | None:
    """The recovery lock, held; None when busy for ``wait`` seconds or Redis is down
    (the recovery then proceeds on its SQL claims alone)."""
    lock = client.lock(keys.lock_recover, timeout=LOCK_TTL, sleep=0.05, blocking_timeout=wait)
    try:
        if lock.acquire():
            return lock
        log.warning("recovery lock busy for %.0fs; proceeding on SQL claims", wait)
    except REDIS_ERRORS as exc:
        log.warning("recovery lock unavailable (%s); proceeding on SQL claims", exc)
    return None


def requeue_jobs(
    app: Any,
    service: EnhancedMaintenanceModeService,
    *,
    actor: str = "recovery",
    limit: int | None = None,
    force: bool = False,
    use_lock: bool = True,
    lock_wait: float = 60.0,
    stale_after: float = STALE_CLAIM_SECONDS,
) -> RequeueReport:
    """Republish every requeueable job (deferred or terminated, rerun-safe) exactly once.

    Refuses while maintenance is on (the jobs would only be deferred again)
    unless ``force``. Clears ``recovery_pending`` in the status once nothing
    is left to requeue.
    """
    report = RequeueReport()
    current = service.state.load()
    if current.is_active and not force:
        report.skipped = "maintenance is active; deferred jobs stay deferred until it ends"
        return report
    store = JobStore(service.db)
    lock = _recover_lock(service.redis, service.keys, lock_wait) if use_lock else None
    try:
        with flower.dispatcher(app) as eventer:
            waiting = sorted(store.requeueable(), key=original_order)
            for record in waiting[:limit]:
                new_id = str(uuid.uuid4())
                if not store.claim_for_requeue(record, new_id):
                    continue  # another recovery took it
                try:
                    publish_record(app, record, new_id)
                except Exception as exc:
                    store.release_claim(record, outcome=f"requeue failed: {exc}"[:32])
                    report.failed.append((record.original_id, str(exc)))
                    log.error("maintenance: requeue of %s failed: %s", record.original_id, exc)
                    continue
                _published(service, store, report, eventer, record, new_id)
            for record in store.stale_claims(stale_after):
                _redrive(app, service, store, report, eventer, record)
    finally:
        if lock is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                lock.release()
    _finish(service, store, report, actor)
    return report


def _published(
    service: EnhancedMaintenanceModeService,
    store: JobStore,
    report: RequeueReport,
    eventer: Any,
    record: JobRecord,
    new_id: str,
) -> None:
    store.mark_requeued(record)
    report.requeued.append((record.original_id, new_id))
    flower.send_requeued(eventer, record, new_id)
    maintenance_events.emit(maintenance_events.job_requeued, service, job=record, new_id=new_id)


def _redrive(
    app: Any,
    service: EnhancedMaintenanceModeService,
    store: JobStore,
    report: RequeueReport,
    eventer: Any,
    record: JobRecord,
) -> None:
    """Finish a claim whose recovery died: publish again under the id it reserved.

    Whether its first publish happened is unknown; the worker keeps exactly one
    of the copies (the attempt token), so publishing again is safe.
    """
    new_id = record.requeued_id
    if not new_id or not store.retake_claim(record):
        return
    try:
        publish_record(app, record, new_id)
    except Exception as exc:
        report.failed.append((record.original_id, str(exc)))
        log.error("maintenance: requeue of %s failed again: %s", record.original_id, exc)
        return
    log.warning(
        "maintenance: finished the requeue of %s left by a recovery that died", record.original_id
    )
    _published(service, store, report, eventer, record, new_id)


def _finish(
    service: EnhancedMaintenanceModeService, store: JobStore, report: RequeueReport, actor: str
) -> None:
    if report.requeued or report.failed:
        service.record_event(
            "jobs_requeued",
            actor,
            details={
                "requeued": len(report.requeued),
                "failed": len(report.failed),
                "jobs": [list(pair) for pair in report.requeued[:1000]],
            },
        )
        log.info(
            "maintenance: requeued %d job(s), %d failed", len(report.requeued), len(report.failed)
        )
    current = service.state.load()
    if report.failed or current.is_active or store.requeueable(limit=1):
        return
    if current.recovery_pending:
        service.update_status(actor, "recovery_completed", recovery_pending=False)
    report.recovery_completed = True
