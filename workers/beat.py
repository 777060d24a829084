"""The beat status check: a periodic task that keeps maintenance on schedule and tidy.

Each run: start and end scheduled windows, flag overdue maintenance (once per
activation), reap dead workers' registry entries, announce the drain, and
finish a recovery requeue the disabling node could not do. Every step is
idempotent, so two beats (or a manual run) never do anything twice. Owner of
``{p}:overdue:<activation>``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import redis

from maintenance import EnhancedMaintenanceModeService, MaintenanceError, OperationType
from maintenance.domain.status import utcnow
from maintenance.job_registry import reap_dead_workers
from maintenance.keys import Keys
from maintenance.redisconn import REDIS_ERRORS
from maintenance.store import windows as w
from maintenance.store.jobs import JobStore

from .drain import announce_if_drained
from .requeue import STALE_CLAIM_SECONDS, requeue_jobs

log = logging.getLogger("maintenance.beat")

#: Name of the registered task and its operation type (never blocked: it is how maintenance ends).
STATUS_CHECK_TASK = "maintenance.status_check"
STATUS_CHECK_OPERATION = OperationType.ADMIN_OPERATIONS.value
DEFAULT_INTERVAL = 10.0
ACTOR = "beat"
OVERDUE_TTL = 7 * 24 * 3600


@dataclass
class CheckReport:
    """What one status check did."""

    windows_started: list[int] = field(default_factory=list)
    windows_ended: list[int] = field(default_factory=list)
    windows_skipped: list[int] = field(default_factory=list)
    windows_missed: list[int] = field(default_factory=list)
    overdue_flagged: bool = False
    reaped: int = 0
    drained: bool = False
    requeue: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class _NoSentEvent:
    """The event dispatcher of one publish that sends no ``task-sent`` event.

    With ``task_send_sent_event`` on, Celery sends ``task-sent`` through the
    publish option ``event_dispatcher``, else through the app's own
    (``celery/app/amqp.py`` ``send_task_message``): this one publishes nothing.
    """

    def publish(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: the status check is the control plane's own, not a job to watch."""


NO_SENT_EVENT = _NoSentEvent()


def status_check_base(app: Any) -> type:
    """``app``'s task class, publishing without a ``task-sent`` event from ``apply_async``
    (what beat calls for a registered task, and ``delay``), so the check every
    ``interval`` seconds never reaches Flower's task list."""
    base: type = app.Task

    def apply_async(self: Any, args: Any = None, kwargs: Any = None, *rest: Any, **options: Any):
        options.setdefault("event_dispatcher", NO_SENT_EVENT)
        return base.apply_async(self, args, kwargs, *rest, **options)  # type: ignore[attr-defined]

    return type("StatusCheckTask", (base,), {"apply_async": apply_async, "__module__": __name__})


def schedule_entry(interval: float = DEFAULT_INTERVAL) -> dict[str, Any]:
    """The ``beat_schedule`` entry running the check every ``interval`` seconds."""
    return {"task": STATUS_CHECK_TASK, "schedule": interval, "options": {"expires": interval}}


def status_check(
    service: EnhancedMaintenanceModeService, app: Any, now: datetime | None = None
) -> CheckReport:
    """Run every step once."""
    now = now or utcnow()
    report = CheckReport()
    _run_windows(service, now, report)
    report.overdue_flagged = _flag_overdue(service, now)
    report.reaped = len(reap_dead_workers(service))
    report.drained = announce_if_drained(service, actor=ACTOR)
    current = service.state.load()
    if not current.is_active and (
        current.recovery_pending or JobStore(service.db).stale_claims(STALE_CLAIM_SECONDS)
    ):
        # Pending after a disable, or left half-done by a recovery that died.
        report.requeue = requeue_jobs(app, service, actor=ACTOR).to_dict()
    return report


def _run_windows(
    service: EnhancedMaintenanceModeService, now: datetime, report: CheckReport
) -> None:
    store = w.WindowStore(service.db)
    for window in store.list((w.SCHEDULED, w.ACTIVE)):
        try:
            if window.state == w.SCHEDULED:
                _maybe_start(service, store, window, now, report)
            elif now >= window.end_at:
                _end(service, store, window, report)
        except MaintenanceError as exc:
            log.error("maintenance window %s: %s", window.id, exc)


def _maybe_start(
    service: EnhancedMaintenanceModeService,
    store: w.WindowStore,
    window: w.Window,
    now: datetime,
    report: CheckReport,
) -> None:
    if now >= window.end_at:
        if store.transition(window, w.SCHEDULED, w.MISSED):
            report.windows_missed.append(window.id)
            service.record_event("window_missed", ACTOR, window.reason, {"window_id": window.id})
        return
    if now < window.start_at:
        return
    current = service.state.load()
    if current.is_active:
        if store.transition(window, w.SCHEDULED, w.SKIPPED, activation_id=current.activation_id):
            report.windows_skipped.append(window.id)
            service.record_event(
                "window_skipped",
                ACTOR,
                "maintenance was already active",
                {"window_id": window.id},
            )
        return
    if not store.transition(window, w.SCHEDULED, w.ACTIVE):
        return  # another beat started it
    # Rounded up: the announced end must not come before the window's own end.
    seconds = max(1, math.ceil((window.end_at - now).total_seconds()))
    try:
        result = service.enable_maintenance(
            window.reason,
            duration=seconds,
            mode=window.mode,
            enabled_by=f"schedule #{window.id} ({window.created_by or 'scheduler'})",
            details={"window_id": window.id},
        )
    except MaintenanceError:
        store.transition(window, w.ACTIVE, w.SCHEDULED)
        raise
    store.transition(window, w.ACTIVE, w.ACTIVE, activation_id=result.status.activation_id)
    report.windows_started.append(window.id)


def _end(
    service: EnhancedMaintenanceModeService,
    store: w.WindowStore,
    window: w.Window,
    report: CheckReport,
) -> None:
    if not store.transition(window, w.ACTIVE, w.ENDED):
        return
    report.windows_ended.append(window.id)
    current = service.state.load()
    if current.is_active and current.activation_id == window.activation_id:
        service.disable_maintenance(
            f"schedule #{window.id}", requeue=True, reason="scheduled window ended"
        )


def _flag_overdue(service: EnhancedMaintenanceModeService, now: datetime) -> bool:
    current = service.state.load()
    if not current.is_overdue(now) or current.overdue or current.activation_id is None:
        return False
    claim = service.keys.overdue_flagged(current.activation_id)
    if not _claim_overdue(service.redis, service.keys, current.activation_id):
        return False
    assert current.estimated_completion is not None  # is_overdue says there is one
    late = int((now - current.estimated_completion).total_seconds())
    try:
        service.update_status(
            ACTOR,
            "maintenance_overdue",
            reason=f"maintenance is {late} s past its estimated end",
            details={"seconds_late": late},
            overdue=True,
        )
    except Exception:
        # Not on record (nor notified): the next check flags it again.
        with contextlib.suppress(*REDIS_ERRORS):
            service.redis.delete(claim)
        raise
    log.warning("maintenance %s is overdue by %d s", current.activation_id, late)
    return True


def _claim_overdue(client: redis.Redis, keys: Keys, activation_id: str) -> bool:
    """True for the one check, fleet-wide, that flags ``activation_id`` overdue."""
    return bool(client.set(keys.overdue_flagged(activation_id), "1", nx=True, ex=OVERDUE_TTL))
