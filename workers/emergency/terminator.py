"""The termination ladder each worker main process runs on its own jobs in an emergency.

The plan arrives with the fenced status; the ladder runs in the worker's
event loop (``hub.call_soon``/``call_later``), the thread that owns Celery's
request table, the pool and the message acknowledgements:

1. grace -- jobs poll ``should_abort()`` and stop on their own;
2. at the end of the grace period -- every job still running (and not
   exempt) is recorded in SQL, then stopped through Celery's own
   ``revoke(terminate=True, signal="SIGTERM")`` handler: the message is
   acknowledged, the result says REVOKED, Flower shows it, and the id is
   blacklisted here (``celery/worker/control.py`` ``_revoke``,
   ``celery/worker/request.py`` ``Request.terminate``);
3. ``kill_after`` later -- a pool child still running one of those jobs is
   SIGKILLed through the pool (billiard's ``terminate_job`` only signals its
   own children). A second ``revoke(signal="SIGKILL")`` would not work: the
   first revoke already took the request out of the worker's request table
   (``Request._announce_revoked`` -> ``task_ready``), so ``_revoke`` finds nothing.

Green pools (gevent, eventlet) have no event loop: the ladder runs in greenlets
of the patched ``threading`` (the same OS thread as the consumer, switching only
where it waits), and Celery's ``terminate_job`` kills the job's greenlet
(``GreenletExit`` where the job next waits; a job that never yields cannot be
stopped). Pools without ``terminate_job`` (threads, solo) cannot do steps 2 and 3: the
worker says so (progress, counts, an ``emergency_unterminable`` event) and
its jobs stay listed as running until they end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery.concurrency import ALIASES
from celery.concurrency.base import BasePool
from celery.utils.collections import AttributeDict
from celery.worker import control
from celery.worker import state as worker_state

from maintenance import EnhancedMaintenanceModeService, MaintenanceStatus
from maintenance.domain.emergency_plan import (
    OUTCOME_TERMINATED,
    PHASE_TERMINATING,
    UNTERMINABLE,
    TerminationPlan,
    plan_of,
)
from maintenance.emergency import phases
from maintenance.emergency.fleet import FleetBoard, WorkerProgress
from maintenance.errors import MaintenanceError
from maintenance.job_flags import JobFlags
from maintenance.job_registry import JobRegistry
from maintenance.redisconn import REDIS_ERRORS
from maintenance.store.jobs import JobRecord

from ..held import holding
from . import jobinfo, outcomes
from .handoff import HandoffWriter

log = logging.getLogger("maintenance.emergency")
#: A request accepted this recently may not have registered itself yet (``task_prerun``
#: runs in the child a moment after the main process accepted it).
REGISTRATION_LAG = 0.5
#: How often the ladder looks whether SIGTERMed jobs are gone (it ends early if so).
STOPPED_POLL = 0.1
#: How long a worker leaves the recovery requeue to the process that lifted the emergency.
RECOVERY_DELAY = 2.0


def pool_name(pool: Any) -> str:
    """The name ``celery worker -P`` knows the pool by (``prefork``, ``threads``, ``solo``...)."""
    path = f"{type(pool).__module__}:{type(pool).__name__}"
    names = [name for name, target in ALIASES.items() if target == path]
    return names[0] if names else type(pool).__module__.rsplit(".", 1)[-1]


def can_terminate(pool: Any) -> bool:
    """Whether the pool can stop one running job (prefork sets ``terminate_job`` on start)."""
    if pool is None:
        return False
    return "terminate_job" in vars(pool) or type(pool).terminate_job is not BasePool.terminate_job


def is_green(pool: Any) -> bool:
    """Whether jobs run as greenlets of the worker main process (gevent, eventlet)."""
    return bool(getattr(pool, "is_green", False))


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a live child from a reused pid), if readable."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if fields[0] not in ("Z", "X") and len(fields) > 19 else "gone"


def _alive(pid: int, started: str | None) -> bool:
    now = _process_start(pid)
    if now is not None or started is not None:
        return now is not None and now != "gone" and now == started
    try:
        os.kill(pid, 0)  # no /proc: existence is all we can tell
    except OSError:
        return False
    return True


@dataclass
class _Stopped:
    record: JobRecord
    pid: int
    started: str | None
    result: Callable[[], Any] | None  # weakref to billiard's ApplyResult
    #: Green pools: ``pid`` is the id of the job's greenlet in the pool's map.
    pool_map: dict[int, Any] | None = None


class Ladder:
    """One plan on one worker: grace, SIGTERM, SIGKILL."""

    def __init__(self, owner: WorkerTerminator, plan: TerminationPlan, status: MaintenanceStatus):
        self.owner = owner
        self.service = owner.service
        self.plan = plan
        self.emergency_id = str(status.emergency_id)
        self.activation_id = status.activation_id
        self.reason = f"emergency {self.emergency_id}: {status.reason or 'no reason given'}"
        self.progress = WorkerProgress(
            node=owner.node,
            hostname=owner.hostname,
            pool=owner.pool,
            can_terminate=owner.can_terminate,
            plan_id=plan.plan_id,
        )
        self.stopped: list[_Stopped] = []
        #: Ids of stopped jobs still in the registry (kept there until their process is gone).
        self.listed: set[str] = set()

    # -- steps (event loop) ----------------------------------------------------
    def begin(self) -> None:
        """Grace period: publish that this worker is on it; schedule the SIGTERM."""
        self.progress.running = len(self._running())
        self._publish()
        self.owner.call_later(self.plan.sigterm_at - time.time(), self.sigterm)

    def sigterm(self) -> None:
        """End of the grace period: record, then revoke-terminate what still runs."""
        if not self._in_force():
            self.progress.state = "cancelled"
            self._publish()
            return
        targets = self._targets()
        records = [self._record(req, operation) for req, operation in targets]
        try:
            outcomes.record_stopped(
                self.service, records, emergency_id=self.emergency_id, actor=self.owner.hostname
            )
        except MaintenanceError as exc:
            # Stopping comes first in an emergency; the log keeps what a rerun needs.
            for record in records:
                log.error("emergency: %s NOT recorded (%s): %r", record.original_id, exc, record)
        ids = [req.id for req, _ in targets]
        if ids:
            pool = self.owner.consumer.pool
            green_map = getattr(pool, "_pool_map", None) if is_green(pool) else None
            self.stopped = [
                _Stopped(
                    record=record,
                    pid=req.worker_pid,
                    started=None if green_map is not None else _process_start(req.worker_pid),
                    result=req._apply_result,
                    pool_map=green_map,
                )
                for (req, _), record in zip(targets, records, strict=True)
            ]
            consumer = self.owner.consumer
            state = AttributeDict(app=consumer.app, hostname=consumer.hostname, consumer=consumer)
            # ``task_revoked`` fires as SIGTERM is sent, but a process that holds SIGTERM
            # off runs on until SIGKILL: the fleet must keep counting it until it is gone.
            self.listed.update(ids)
            try:
                with holding(ids):
                    control.revoke(state, ids, terminate=True, signal="SIGTERM")
            except Exception:  # the SIGKILL step still comes for whatever survived
                log.exception("emergency %s: revoke failed", self.emergency_id)
            log.warning("emergency %s: SIGTERM to %d job(s)", self.emergency_id, len(ids))
            self._unlist([s for s in self.stopped if not self._still_running(s)])
        self.progress.terminated = ids
        self.progress.running = 0
        self.progress.state = "terminating"
        self._publish()
        self.owner.background(
            phases.advance_phase,
            self.service,
            self.emergency_id,
            PHASE_TERMINATING,
            self.owner.hostname,
            self.plan.plan_id,
        )
        if ids:
            self.owner.call_later(STOPPED_POLL, self.await_stopped)
        else:
            self.owner.background(self._complete)

    def await_stopped(self) -> None:
        """Between SIGTERM and SIGKILL: done as soon as every stopped job's process ended."""
        self._unlist([s for s in self.stopped if not self._still_running(s)])
        if not any(self._still_running(s) for s in self.stopped):
            self.sigkill()  # nothing left to kill: finishes the ladder now
            return
        left = self.plan.kill_at - time.time()
        if left <= 0:
            self.sigkill()
            return
        self.owner.call_later(min(STOPPED_POLL, left), self.await_stopped)

    @staticmethod
    def _still_running(stopped: _Stopped) -> bool:
        if stopped.pool_map is not None:
            return stopped.pid in stopped.pool_map  # the pool drops a greenlet that ended
        result = stopped.result() if stopped.result is not None else None
        if result is not None and result.ready():
            return False  # the job's process returned or is gone
        return _alive(stopped.pid, stopped.started)

    def sigkill(self) -> None:
        """``kill_after`` past SIGTERM: SIGKILL each child still running its job."""
        killed = []
        pool = self.owner.consumer.pool
        for stopped in self.stopped:
            if not self._still_running(stopped):
                continue
            try:
                pool.terminate_job(stopped.pid, signal.SIGKILL)
            except Exception:
                log.exception("emergency: SIGKILL of pid %s failed", stopped.pid)
                continue
            killed.append(stopped.record)
        if killed:
            log.warning("emergency %s: SIGKILL to %d job(s)", self.emergency_id, len(killed))
        try:
            outcomes.mark_killed(
                self.service, killed, emergency_id=self.emergency_id, actor=self.owner.hostname
            )
        except MaintenanceError as exc:
            log.error("emergency: killed jobs not marked (%s): %s", exc, killed)
        self.progress.killed = [r.original_id for r in killed]
        self._unlist(self.stopped)  # SIGKILL cannot be held off
        self.owner.background(self._complete)

    def cannot_terminate(self) -> None:
        """This pool cannot stop a running job: list what runs here, say so, stay out."""
        registry = JobRegistry(self.service.redis, self.service.keys)
        mine = [e for e in registry.running() if e.node == self.owner.node]
        ids = [e.task_id for e in mine]
        self.progress.state = "cannot-terminate"
        self.progress.unterminable = ids
        self.progress.running = len(ids)
        self._publish()
        outcomes.count(self.service, self.emergency_id, **{UNTERMINABLE: len(ids)})
        self.service.record_event(
            "emergency_unterminable",
            self.owner.hostname,
            details={
                "emergency_id": self.emergency_id,
                "worker": self.owner.hostname,
                "pool": self.owner.pool,
                "jobs": ids,
                "names": [e.name for e in mine],
            },
            activation_id=self.activation_id,
        )
        if ids:
            log.error(
                "emergency %s: the %s pool of %s cannot terminate jobs; still running: %s",
                self.emergency_id,
                self.owner.pool,
                self.owner.hostname,
                ", ".join(f"{e.name}[{e.task_id}]" for e in mine),
            )
        self._finish()

    def _complete(self) -> None:
        """Off the loop: what the pool children handed over is in SQL, then say done."""
        self.owner.handoff.flush()
        self.progress.state = "done"
        self._publish()
        self._finish()

    # -- helpers ---------------------------------------------------------------
    def _unlist(self, gone: list[_Stopped]) -> None:
        ids = [s.record.original_id for s in gone if s.record.original_id in self.listed]
        if not ids:
            return
        try:
            JobRegistry(self.service.redis, self.service.keys).remove(*ids)
        except REDIS_ERRORS as exc:
            log.warning("emergency: stopped jobs not unlisted (reaped later): %s", exc)
            return
        self.listed.difference_update(ids)

    def _in_force(self) -> bool:
        plan = plan_of(self.service.status)
        return plan is not None and plan.plan_id == self.plan.plan_id

    def _running(self) -> list[Any]:
        return [r for r in list(worker_state.active_requests) if r.time_start and r.worker_pid]

    def _targets(self) -> list[tuple[Any, str]]:
        """Running jobs to stop: not exempt, and not already past their last line."""
        requests = self._running()
        if not requests:
            return []
        service = self.service
        ids = [r.id for r in requests]
        try:
            allowed_flags = JobFlags(service.redis, service.keys).completion_allowed_many(ids)
            listed = JobRegistry(service.redis, service.keys).listed(ids)
        except REDIS_ERRORS:
            allowed_flags, listed = [False] * len(ids), [True] * len(ids)
        now = time.time()
        out = []
        for req, allowed, is_listed in zip(requests, allowed_flags, listed, strict=True):
            if allowed:
                continue
            if not is_listed and now - req.time_start > REGISTRATION_LAG:
                continue  # task_postrun already ran: the job's work is done
            headers = req.request_dict
            operation = jobinfo.operation_of(service, req.task.app, req.type, headers)
            if jobinfo.exempt_by_policy(service, operation, headers):
                continue
            out.append((req, operation.value))
        return out

    def _record(self, req: Any, operation: str) -> JobRecord:
        return jobinfo.record_from_request(
            req,
            operation=operation,
            outcome=OUTCOME_TERMINATED,
            reason=self.reason,
            worker=self.owner.hostname,
            activation_id=self.activation_id,
        )

    def _publish(self) -> None:
        try:
            board = FleetBoard(self.service.redis, self.service.keys)
            board.write_progress(self.emergency_id, self.progress)
        except REDIS_ERRORS as exc:
            log.warning("emergency %s: progress not published: %s", self.emergency_id, exc)

    def _finish(self) -> None:
        phases.finish_if_done(
            self.service, self.emergency_id, self.owner.hostname, self.plan.plan_id
        )


class WorkerTerminator:
    """Follows the status in a worker main process and runs a ``Ladder`` per plan."""

    def __init__(self, service: EnhancedMaintenanceModeService, consumer: Any, node: str) -> None:
        self.service = service
        self.consumer = consumer
        self.node = node
        self.hostname = str(consumer.hostname)
        self.pool = pool_name(consumer.pool)
        self.hub = getattr(consumer, "hub", None)
        self.green = is_green(consumer.pool)
        self.can_terminate = can_terminate(consumer.pool) and (self.hub is not None or self.green)
        self.pid = os.getpid()
        self.handled: set[str] = set()
        self.emergencies: set[str] = set()
        self._recovering: set[str] = set()
        self._listener: int | None = None
        self._lock = threading.Lock()
        self.handoff = HandoffWriter(service, node, self.hostname)

    def start(self) -> WorkerTerminator:
        """Follow status changes; act on a plan already in force (a worker started late)."""
        if self._listener is None:
            self.handoff.start()
            self._listener = self.service.cache.add_listener(self.on_status)
            self.on_status(self.service.status)
        return self

    def stop(self) -> None:
        """Stop following (what was handed over is written first)."""
        if self._listener is not None:
            self.service.cache.remove_listener(self._listener)
            self._listener = None
            self.handoff.stop()
            with contextlib.suppress(MaintenanceError, *REDIS_ERRORS):
                self.handoff.flush()

    def on_status(self, status: MaintenanceStatus) -> None:
        """Status listener (cache thread): start the ladder of a new plan."""
        if os.getpid() != self.pid:
            return  # a pool child inherited this listener through fork
        plan = plan_of(status)
        if plan is None:
            self._maybe_recover(status)
            return
        with self._lock:
            if plan.plan_id in self.handled:
                return
            self.handled.add(plan.plan_id)
            self.emergencies.add(str(status.emergency_id))
        ladder = Ladder(self, plan, status)
        if self.can_terminate and self.hub is not None:
            self.hub.call_soon(ladder.begin)
        elif self.can_terminate:
            self.call_later(0.0, ladder.begin)
        else:
            self.background(ladder.cannot_terminate)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the event loop after ``delay`` seconds (now if past); in a green
        pool, in a greenlet of the consumer's thread (``threading`` is patched there)."""
        if self.hub is None:
            timer = threading.Timer(max(0.0, delay), fn)
            timer.daemon = True
            timer.start()
            return
        self.hub.call_later(max(0.0, delay), fn)

    def background(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` off the event loop (SQL writes and fenced status updates)."""

        def run() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("emergency: %s failed", getattr(fn, "__name__", fn))

        threading.Thread(target=run, name="maintenance-emergency", daemon=True).start()

    def _maybe_recover(self, status: MaintenanceStatus) -> None:
        # A lifted emergency whose lifter had no Celery app: a worker that took part
        # republishes what was cut off (exactly once: SQL claims and the recovery lock).
        eid = status.emergency_id
        if status.is_active or not status.recovery_pending or eid not in self.emergencies:
            return
        with self._lock:
            if eid in self._recovering:
                return
            self._recovering.add(eid)
        self.background(self._recover, eid)

    def _recover(self, emergency_id: str) -> None:
        from maintenance.emergency.report import create_emergency_report
        from workers.requeue import requeue_jobs

        # A lifter with a Celery app requeues at once and clears ``recovery_pending``;
        # step in only when it did not.
        time.sleep(RECOVERY_DELAY)
        if not self.service.state.load().recovery_pending:
            return
        report = requeue_jobs(self.consumer.app, self.service, actor=self.hostname)
        if report.requeued:
            with contextlib.suppress(MaintenanceError):
                create_emergency_report(self.service, emergency_id)
