"""Deferral: a job held back by a worker is recorded in SQL once, then acknowledged."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from maintenance import EnhancedMaintenanceModeService
from maintenance import events as maintenance_events
from maintenance.job_registry import JobRegistry
from maintenance.redisconn import REDIS_ERRORS
from maintenance.store.jobs import JobRecord, JobStore

from . import flower

log = logging.getLogger("maintenance.celery")


def defer(
    service: EnhancedMaintenanceModeService, record: JobRecord, *, eventer: Any = None
) -> bool:
    """Store ``record`` (once per original id) and announce it; True when newly stored.

    Raises whatever the SQL store raises: the caller must then not acknowledge
    the message (nothing may be lost).
    """
    stored = JobStore(service.db).record(record)
    with contextlib.suppress(*REDIS_ERRORS):
        # A continuation registered as queued by its publisher will not start now.
        JobRegistry(service.redis, service.keys).remove(record.original_id)
    flower.send_deferred(eventer, record)
    if stored:
        log.info(
            "maintenance: deferred %s[%s] from queue %s (%s)",
            record.task_name,
            record.original_id,
            record.queue,
            record.operation,
        )
        maintenance_events.emit(maintenance_events.job_deferred, service, job=record)
    return stored
