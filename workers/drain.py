"""Drain: when the last running job of a blocked type ends, say so once, fleet-wide.

The announcement is an event-log entry (with its webhook notifications, in one
transaction), then a ``maintenance.events.drained`` signal in the process that
noticed and a message on the Redis ``drained`` channel for everyone else; a
per-activation ``SET NX`` makes it happen once, and is given back when the entry
cannot be written, so a later check announces it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable

from maintenance import (
    EnhancedMaintenanceModeService,
    MaintenanceStatus,
    default_service,
    drain_marks,
)
from maintenance import events as maintenance_events
from maintenance.job_registry import ActiveJob, JobRegistry, reap_dead_workers
from maintenance.redisconn import REDIS_ERRORS, make_client

log = logging.getLogger("maintenance.drain")


def blocked_jobs_running(
    service: EnhancedMaintenanceModeService,
    status: MaintenanceStatus | None = None,
    *,
    reap: bool = True,
) -> list[ActiveJob]:
    """Registry entries of blocked types (dead workers' entries reaped first)."""
    if reap:
        reap_dead_workers(service)
    return JobRegistry(service.redis, service.keys).of_blocked_types(status or service.status)


def announce_if_drained(
    service: EnhancedMaintenanceModeService,
    status: MaintenanceStatus | None = None,
    *,
    actor: str = "worker",
) -> bool:
    """Announce the drain of the current activation if nothing blocked still runs.

    True only for the one call (fleet-wide) that made the announcement.
    """
    status = status or service.status
    if not status.is_active or status.test_mode or status.activation_id is None:
        return False
    if blocked_jobs_running(service, status, reap=False):
        return False
    client, keys, activation_id = service.redis, service.keys, status.activation_id
    if not drain_marks.claim_announcement(client, keys, activation_id):
        return False
    try:
        # On record first (its notification is written with it), then announced.
        service.record_event(
            "drained",
            actor,
            details={"version": status.version},
            activation_id=activation_id,
        )
    except Exception as exc:
        # Not on record, not announced: give the claim back so a later check does both.
        with contextlib.suppress(*REDIS_ERRORS):
            drain_marks.release_announcement(client, keys, activation_id)
        log.warning("could not record the drain in SQL (%s); a later check will", exc)
        return False
    drain_marks.publish(client, keys, activation_id)
    log.info("maintenance %s: drained (no running job of a blocked type)", activation_id)
    maintenance_events.emit(maintenance_events.drained, service, activation_id=activation_id)
    return True


def wait_for_drain(
    timeout: float | None = None,
    service: EnhancedMaintenanceModeService | None = None,
    *,
    on_progress: Callable[[list[ActiveJob]], None] | None = None,
    interval: float = 0.5,
) -> bool:
    """Block until no job of a blocked type runs; False after ``timeout`` seconds.

    Wakes on the ``drained`` channel and re-checks every ``interval`` seconds
    (reaping dead workers' entries), calling ``on_progress(running)`` each time.
    With maintenance off nothing is blocked, so it returns True at once.
    """
    service = service or default_service()
    deadline = None if timeout is None else time.monotonic() + timeout
    pubsub = None
    try:
        client = make_client(service.redis_url, blocking=True)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(service.keys.drained)
    except REDIS_ERRORS as exc:
        log.warning("drain: cannot subscribe (%s); polling", exc)
        pubsub = None
    try:
        while True:
            status = service.status
            running = blocked_jobs_running(service, status)
            if on_progress is not None:
                on_progress(running)
            if not running:
                announce_if_drained(service, status, actor="drain")
                return True
            wait = interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                wait = min(wait, remaining)
            if pubsub is not None:
                try:
                    pubsub.get_message(timeout=wait)
                    continue
                except REDIS_ERRORS:
                    pubsub = None
            time.sleep(wait)
    finally:
        if pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                pubsub.close()
