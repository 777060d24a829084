"""Deferral: a job held back by a worker is recorded in SQL once, then acknowledged.

``defer_many`` is the one implementation: a batch of records in one SQL transaction,
their registry entries in one Redis call, their requeue attempts in one pipeline.
``defer`` is a batch of one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from maintenance import EnhancedMaintenanceModeService
from maintenance import events as maintenance_events
from maintenance.job_registry import JobRegistry
from maintenance.redisconn import REDIS_ERRORS
from maintenance.store.jobs import JobRecord, JobStore

from . import flower
from .requeue import release_attempt

log = logging.getLogger("maintenance.celery")


@dataclass(frozen=True)
class Deferral:
    """One message to defer: its record and, for a requeued job held back again, the
    requeue attempt token it carries (released so the next requeue runs)."""

    record: JobRecord
    attempt: str | None = None


#: Per deferral: True when newly stored, False when already recorded (both: acknowledge
#: the message), or the error that leaves it unacknowledged (requeue the message).
Outcome = bool | Exception


def defer(
    service: EnhancedMaintenanceModeService,
    record: JobRecord,
    *,
    eventer: Any = None,
    attempt: str | None = None,
) -> bool:
    """Store ``record`` (once per original id) and announce it; True when newly stored.

    ``attempt``: the requeue attempt token of the message (a job requeued under its
    own id and held back again); it is released so the next requeue runs.

    Raises whatever the SQL store raises: the caller must then not acknowledge
    the message (nothing may be lost).
    """
    (outcome,) = defer_many(service, [Deferral(record, attempt)], eventer=eventer)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def defer_many(
    service: EnhancedMaintenanceModeService,
    deferrals: Sequence[Deferral],
    *,
    eventer: Any = None,
) -> list[Outcome]:
    """Store every record (one SQL transaction, once per original id), unlist them from
    the job registry, release their requeue attempts and announce them; one ``Outcome``
    per deferral, in order.

    Raises whatever the SQL store raises, having stored none of them: the caller must
    then acknowledge none of the messages (nothing may be lost).
    """
    if not deferrals:
        return []
    records = [d.record for d in deferrals]
    stored = JobStore(service.db).record_many(records)
    with contextlib.suppress(*REDIS_ERRORS):
        # A continuation registered as queued by its publisher will not start now.
        JobRegistry(service.redis, service.keys).remove(*{r.original_id for r in records})
    outcomes: list[Outcome] = list(stored)
    attempted = [n for n, d in enumerate(deferrals) if d.attempt]
    if attempted:
        try:
            pipe = service.redis.pipeline(transaction=False)
            for n in attempted:
                task_id, attempt = records[n].original_id, str(deferrals[n].attempt)
                release_attempt(pipe, service.keys, task_id, attempt)
            pipe.execute()
        except Exception as exc:
            # Their next requeue would be taken for second copies: keep these records'
            # messages unacknowledged (the caller requeues them) rather than lose them.
            for n in attempted:
                error = RuntimeError(f"requeue attempt of {records[n].original_id} not released")
                error.__cause__ = exc
                outcomes[n] = error
    with flower.buffered(eventer):
        for record, outcome in zip(records, outcomes, strict=True):
            if not isinstance(outcome, Exception):
                flower.send_deferred(eventer, record)
    for record, outcome in zip(records, outcomes, strict=True):
        if outcome is True:
            log.info(
                "maintenance: deferred %s[%s] from queue %s (%s)",
                record.task_name,
                record.original_id,
                record.queue,
                record.operation,
            )
            maintenance_events.emit(maintenance_events.job_deferred, service, job=record)
    return outcomes
