"""Logging every non-admin out, for any process: empty the session index (deleting the
server-side sessions it names), raise the epoch that turns cookie sessions away, and
publish the epoch in the status so every web node has it before the call returns.

The epoch lives in Redis (``SessionIndex``); when Redis lost it, it is rebuilt from
the last ``sessions_invalidated`` event in the SQL event log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import events
from .redisconn import REDIS_ERRORS
from .session_index import SessionIndex

if TYPE_CHECKING:
    import redis

    from .domain.status import MaintenanceStatus
    from .service import EnhancedMaintenanceModeService
    from .store.eventlog import EventLog

log = logging.getLogger("maintenance.sessions")

EVENT_KIND = "sessions_invalidated"


@dataclass(frozen=True)
class InvalidationResult:
    """What ``invalidate_non_admin`` did."""

    count: int  # non-admin sessions invalidated (index entries)
    deleted: int  # server-side session keys removed
    epoch: int  # sessions stamped with an older epoch are turned away
    seconds: float
    server_side: bool  # whether server-side session keys could be deleted
    status_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "count": self.count,
            "deleted": self.deleted,
            "epoch": self.epoch,
            "seconds": round(self.seconds, 6),
            "server_side": self.server_side,
            "status_version": self.status_version,
        }


def current_epoch(index: SessionIndex, event_log: EventLog) -> int:
    """The session epoch; rebuilt from the SQL event log if Redis lost it."""
    stored = index.stored_epoch()
    if stored is not None:
        return stored
    for event in event_log.history(1, kinds=(EVENT_KIND,)):
        value = int(event.details.get("epoch") or 0)
        return index.restore_epoch(value) if value else 0
    return 0


def invalidate_non_admin(
    service: EnhancedMaintenanceModeService,
    index: SessionIndex,
    actor: str,
    *,
    wait: float | None = None,
    reason: str | None = None,
) -> InvalidationResult:
    """Remove every non-admin session and turn away the ones that cannot be removed.

    Server-side keys named in the index are deleted (see ``SessionIndex.purge_non_admin``);
    the epoch goes up so cookie sessions and anything the index missed are
    refused on their next request; the new epoch is published in the status
    (fenced by ``wait``) so every web node knows it before this returns.
    """
    started = time.perf_counter()
    before = current_epoch(index, service.events)
    count, deleted, server_side = index.purge_non_admin()
    epoch = index.next_epoch(before)
    status = service.status
    if status.activation_id and count:
        index.count_invalidated(status.activation_id, count)
    version = _publish(service, actor, status, count, deleted, epoch, wait, reason)
    result = InvalidationResult(
        count=count,
        deleted=deleted,
        epoch=epoch,
        seconds=time.perf_counter() - started,
        server_side=server_side,
        status_version=version,
    )
    log.info(
        "invalidated %d non-admin session(s) (%d server-side keys) by %s; epoch %d",
        count,
        deleted,
        actor,
        epoch,
    )
    events.emit(events.sessions_invalidated, service, count=count, actor=actor)
    return result


def invalidator(
    service: EnhancedMaintenanceModeService, *, store_client: redis.Redis | None = None
) -> Callable[..., InvalidationResult]:
    """``invalidate(actor, wait=..., reason=...)`` through ``service``'s session index."""
    index = SessionIndex.of(service, store_client=store_client)

    def invalidate(
        actor: str, *, wait: float | None = None, reason: str | None = None
    ) -> InvalidationResult:
        return invalidate_non_admin(service, index, actor, wait=wait, reason=reason)

    return invalidate


def _publish(
    service: EnhancedMaintenanceModeService,
    actor: str,
    status: MaintenanceStatus,
    count: int,
    deleted: int,
    epoch: int,
    wait: float | None,
    reason: str | None,
) -> int | None:
    try:
        result = service.update_status(
            actor,
            EVENT_KIND,
            reason=reason,
            details={"count": count, "deleted": deleted, "epoch": epoch},
            wait=wait,
            invalidated_sessions=status.invalidated_sessions + count,
            extra_changes={"session_epoch": epoch},
        )
    except REDIS_ERRORS as exc:  # the epoch is set; nodes pick it up on their next poll
        log.warning("session epoch %d set but not propagated: %s", epoch, exc)
        return None
    return result.status.version
