"""Logging every non-admin out, for any process, in two steps:

1. **Effect** (milliseconds, whatever the number of sessions): move the non-admin index
   away (one ``RENAME``), raise the epoch that turns every non-admin session issued
   before it away on its next request (server-side and signed-cookie alike: the epoch
   is stamped in the session), and publish the epoch in the status, fenced, so every
   web node has it before the call returns. No session is read or scanned, and no
   request does more than compare two integers.
2. **Clean-up**: delete the server-side session keys the detached index names, in
   bounded batches -- inline (the CLI: the command returns once they are gone) or in
   a background thread (web requests). An unfinished clean-up is resumed by the next
   inline one (``sessions:purging``).

The epoch lives in Redis (``SessionIndex``); when Redis lost it, it is rebuilt from
the last ``sessions_invalidated`` event in the SQL event log.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from . import events
from .domain.validation import validate_note, validate_wait
from .errors import MaintenanceError, RedisUnavailable
from .redisconn import REDIS_ERRORS, describe_redis_error
from .session_index import SessionIndex

if TYPE_CHECKING:
    import redis

    from .domain.status import MaintenanceStatus
    from .service import EnhancedMaintenanceModeService
    from .store.eventlog import EventLog

log = logging.getLogger("maintenance.sessions")

EVENT_KIND = "sessions_invalidated"
#: ``cleanup="auto"`` deletes up to this many sessions' keys before returning (tens of
#: milliseconds), more in the background.
INLINE_CLEANUP_LIMIT = 10_000
Cleanup = Literal["inline", "background", "auto"]


@dataclass(frozen=True)
class InvalidationResult:
    """What ``invalidate_non_admin`` did."""

    count: int  # non-admin sessions invalidated (index entries)
    deleted: int | None  # server-side session keys removed (None: clean-up in background)
    epoch: int  # sessions stamped with an older epoch are turned away
    seconds: float  # the whole call
    server_side: bool  # whether server-side session keys could be deleted
    status_version: int | None = None
    effective_seconds: float = 0.0  # until every web node turned non-admins away
    cleanup_seconds: float | None = None  # deleting the keys (None: in background)
    #: Why the new epoch is not in the status (SQL or Redis failed after the purge):
    #: the sessions are gone and the epoch raised, but other web nodes learn the
    #: epoch only with their next status change.
    publish_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "count": self.count,
            "deleted": self.deleted,
            "epoch": self.epoch,
            "seconds": round(self.seconds, 6),
            "effective_seconds": round(self.effective_seconds, 6),
            "cleanup_seconds": (
                None if self.cleanup_seconds is None else round(self.cleanup_seconds, 6)
            ),
            "server_side": self.server_side,
            "status_version": self.status_version,
            "published": self.publish_error is None,
            "publish_error": self.publish_error,
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
    cleanup: Cleanup = "auto",
) -> InvalidationResult:
    """Turn every non-admin session away now, then delete the server-side ones.

    The non-admin index is detached and the epoch raised, so every non-admin session
    (server-side, cookie, or one the index missed) is refused on its next request; the
    new epoch is published in the status (fenced by ``wait``) so every web node knows
    it before the clean-up starts. ``cleanup="inline"`` then deletes the session keys
    the detached index names (and finishes clean-ups that died) before returning;
    ``"background"`` leaves that to a thread of this process (not a daemon: the process
    finishes it before exiting) and returns at once; ``"auto"``: inline up to
    ``INLINE_CLEANUP_LIMIT`` sessions, else in the background.

    Nothing changes when the SQL store cannot be read (``StoreUnavailable``) or Redis
    is down before the index is detached (``RedisUnavailable``); when the new epoch
    cannot be written to SQL afterwards, the result's ``publish_error`` says so.
    """
    wait = validate_wait(wait)  # before anything is removed
    reason = validate_note(reason)
    started = time.perf_counter()
    service.state.load()  # SQL must answer before anything is removed
    try:
        before = current_epoch(index, service.events)
        token, count = index.detach_non_admin()
    except REDIS_ERRORS as exc:
        raise RedisUnavailable(
            f"Redis unavailable ({describe_redis_error(exc)}); no session was invalidated"
        ) from exc
    try:
        epoch = index.next_epoch(before)
    except REDIS_ERRORS as exc:
        raise RedisUnavailable(
            f"Redis failed after the index of {count} non-admin session(s) was detached; "
            f"the epoch was not raised, so those sessions still work: retry "
            f"({describe_redis_error(exc)})"
        ) from exc
    status = service.status
    if status.activation_id and count:
        with contextlib.suppress(*REDIS_ERRORS):
            index.count_invalidated(status.activation_id, count)
    version, publish_error = _publish(service, actor, status, count, epoch, wait, reason)
    effective = time.perf_counter() - started
    deleted: int | None = None
    cleanup_seconds: float | None = None
    server_side = index.store_known()
    if cleanup == "inline" or (cleanup == "auto" and count <= INLINE_CLEANUP_LIMIT):
        began = time.perf_counter()
        try:
            _, deleted, server_side = index.purge_detached(token)
            for leftover in index.unfinished_purges():
                deleted += index.purge_detached(leftover)[1]
        except REDIS_ERRORS as exc:  # in effect already; the next clean-up resumes
            log.warning("session clean-up %s stopped: %s", token, describe_redis_error(exc))
        cleanup_seconds = time.perf_counter() - began
    else:
        threading.Thread(
            target=_purge_quietly, args=(index, token), name="maintenance-session-purge"
        ).start()  # not a daemon: an exiting process finishes the clean-up first
    result = InvalidationResult(
        count=count,
        deleted=deleted,
        epoch=epoch,
        seconds=time.perf_counter() - started,
        server_side=server_side,
        status_version=version,
        effective_seconds=effective,
        cleanup_seconds=cleanup_seconds,
        publish_error=publish_error,
    )
    log.info(
        "invalidated %d non-admin session(s) by %s; epoch %d in effect after %.1f ms; "
        "server-side keys: %s",
        count,
        actor,
        epoch,
        effective * 1000,
        "deleting in background" if deleted is None else f"{deleted} deleted",
    )
    events.emit(events.sessions_invalidated, service, count=count, actor=actor)
    return result


def _purge_quietly(index: SessionIndex, token: str) -> None:
    try:
        count, deleted, _ = index.purge_detached(token)
        log.info("session clean-up %s: %d key(s) of %d session(s) deleted", token, deleted, count)
    except Exception as exc:  # left in sessions:purging: the next inline clean-up resumes
        log.warning("session clean-up %s stopped: %s", token, exc)


def invalidator(
    service: EnhancedMaintenanceModeService, *, store_client: redis.Redis | None = None
) -> Callable[..., InvalidationResult]:
    """``invalidate(actor, wait=..., reason=...)`` through ``service``'s session index."""
    index = SessionIndex.of(service, store_client=store_client)

    def invalidate(
        actor: str, *, wait: float | None = None, reason: str | None = None
    ) -> InvalidationResult:
        return invalidate_non_admin(service, index, actor, wait=wait, reason=reason, cleanup="auto")

    return invalidate


def _publish(
    service: EnhancedMaintenanceModeService,
    actor: str,
    status: MaintenanceStatus,
    count: int,
    epoch: int,
    wait: float | None,
    reason: str | None,
) -> tuple[int | None, str | None]:
    try:
        result = service.update_status(
            actor,
            EVENT_KIND,
            reason=reason,
            details={"count": count, "epoch": epoch},
            wait=wait,
            invalidated_sessions=status.invalidated_sessions + count,
            extra_changes={"session_epoch": epoch},
        )
    except MaintenanceError as exc:  # SQL: the epoch is raised in Redis only
        log.warning("session epoch %d set in Redis but not recorded: %s", epoch, exc)
        return None, f"the new epoch is not recorded in SQL ({exc})"
    except REDIS_ERRORS as exc:  # the epoch is set; nodes pick it up on their next poll
        log.warning("session epoch %d set but not propagated: %s", epoch, exc)
        return None, f"the new epoch is not published ({describe_redis_error(exc)})"
    return result.status.version, None
