"""``EmergencyMaintenanceHandler``: emergency maintenance with a Celery app at hand.

Everything ``EmergencyControl`` does (declare fenced, lock down, sweep sessions,
check, lift, report), plus: watching the workers' termination ladders with
live progress, comparing the job registry with what the workers themselves
report before lifting, and the recovery requeue right after the lift.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from maintenance import EnhancedMaintenanceModeService
from maintenance.domain.emergency_plan import (
    DEFAULT_GRACE,
    DEFAULT_KILL_AFTER,
    EXTRA_KEY,
    OUTCOMES,
    PHASE_GRACE,
    PHASE_TERMINATED,
    PHASE_TERMINATING,
    TerminationPlan,
    emergency_facts,
    is_emergency,
    plan_of,
)
from maintenance.emergency import fleet, phases
from maintenance.emergency.activation import EmergencyActivation, start_round
from maintenance.emergency.control import EmergencyControl, EmergencyProgress, attach
from maintenance.emergency.deactivation import (
    DeactivationCheck,
    check_deactivation,
    current_emergency,
)
from maintenance.fencing import ActivationResult
from maintenance.redisconn import REDIS_ERRORS
from maintenance.store.jobs import KIND_TERMINATED, JobStore

log = logging.getLogger("maintenance.emergency")
WATCH_INTERVAL = 0.2
#: How long a watch goes on past the SIGKILL deadline for slow workers to report.
WATCH_SLACK = 30.0
INSPECT_TIMEOUT = 5.0

ProgressCallback = Callable[[EmergencyProgress], None]


@dataclass
class TerminationResult:
    """How one termination round ended, job by job."""

    emergency_id: str
    plan: TerminationPlan
    phase: str | None
    finished: bool  # every live worker finished its ladder
    timed_out: bool
    running_at_start: list[str]
    finished_on_their_own: list[str]
    by_outcome: dict[str, list[dict[str, Any]]]
    unterminable: list[dict[str, Any]]
    still_running: list[dict[str, Any]]
    workers: list[dict[str, Any]] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        """Jobs that ended with ``outcome`` (aborted, terminated, killed)."""
        return len(self.by_outcome.get(outcome, []))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "emergency_id": self.emergency_id,
            "plan": self.plan.to_dict(),
            "phase": self.phase,
            "finished": self.finished,
            "timed_out": self.timed_out,
            "running_at_start": self.running_at_start,
            "finished_on_their_own": self.finished_on_their_own,
            **self.by_outcome,
            "unterminable": self.unterminable,
            "still_running": self.still_running,
            "workers": self.workers,
        }


class EmergencyMaintenanceHandler(EmergencyControl):
    """Declare, watch, lift and report emergencies; attaches itself to ``service``.

    ``app`` is needed only to compare the registry with the workers and to
    requeue at once when lifting; without it the workers requeue.
    """

    def __init__(self, service: EnhancedMaintenanceModeService, app: Any = None) -> None:
        super().__init__(service)
        self.app = app
        #: The background watch started by ``activate_emergency_mode`` (its result).
        self.termination: Future[TerminationResult] | None = None
        self._snapshots: dict[str, list[str]] = {}
        attach(service, self)

    # -- declaring -------------------------------------------------------------
    def activate_emergency_mode(
        self, *args: Any, watch: bool = True, **kwargs: Any
    ) -> EmergencyActivation:
        """Declare the emergency (arguments as ``EmergencyControl.activate_emergency_mode``)
        and, with ``watch``, follow the termination in a background thread
        (``self.termination`` holds its result)."""
        result = super().activate_emergency_mode(*args, **kwargs)
        self._snapshots[result.plan.plan_id] = list(result.running_at_activation)
        if watch:
            self.termination = self._watch_in_background(result.plan, result.emergency_id)
        return result

    def terminate_running_jobs(
        self,
        grace_period: float | str = DEFAULT_GRACE,
        kill_after: float | str = DEFAULT_KILL_AFTER,
        *,
        actor: str = "system",
        wait: bool = True,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> TerminationResult:
        """Stop every running job of the current emergency: asked to abort, SIGTERM after
        ``grace_period``, SIGKILL ``kill_after`` later -- each worker on its own jobs.

        A round already under way is followed, not restarted (its timing stands);
        otherwise a new round starts with this timing. With ``wait`` it returns
        once every live worker finished (or ``timeout``), calling ``on_progress``.
        """
        status = current_emergency(self.service)
        eid = str(status.emergency_id)
        plan = plan_of(status)
        if plan is None or status.emergency_phase == PHASE_TERMINATED:
            plan = self._start_round(status, grace_period, kill_after, actor)
        if not wait:
            return self.termination_result(plan, eid)
        return self._watch(plan, eid, timeout, on_progress)

    def _start_round(
        self, status: Any, grace_period: float | str, kill_after: float | str, actor: str
    ) -> TerminationPlan:
        facts = emergency_facts(status)
        eid = status.emergency_id

        def write(plan: TerminationPlan, running: tuple[str, ...]) -> ActivationResult:
            self._snapshots[plan.plan_id] = list(running)
            return self.service.update_status(
                actor,
                "emergency_termination_started",
                details={"running_jobs": list(running[:1000])},
                extra_changes={EXTRA_KEY: {**facts, "plan": plan.to_dict()}},
                expect=lambda s: is_emergency(s) and s.emergency_id == eid,
                emergency_phase=PHASE_GRACE,
            )

        started = start_round(
            self.service,
            grace_period,
            kill_after,
            trigger=str(facts.get("trigger") or "person"),
            triggered_by=actor,
            write=write,
        )
        return started.plan

    # -- watching ----------------------------------------------------------------
    def _watch_in_background(
        self, plan: TerminationPlan, emergency_id: str
    ) -> Future[TerminationResult]:
        future: Future[TerminationResult] = Future()

        def run() -> None:
            try:
                future.set_result(self._watch(plan, emergency_id, None, None))
            except BaseException as exc:  # handed to whoever reads the future
                future.set_exception(exc)

        threading.Thread(target=run, name="maintenance-emergency-watch", daemon=True).start()
        return future

    def _watch(
        self,
        plan: TerminationPlan,
        emergency_id: str,
        timeout: float | None,
        on_progress: ProgressCallback | None,
    ) -> TerminationResult:
        limit = timeout if timeout is not None else plan.kill_at - time.time() + WATCH_SLACK
        deadline = time.monotonic() + max(0.0, limit)
        finished = timed_out = terminating = False
        while True:
            status = self.service.state.load()
            if on_progress is not None:
                on_progress(self._progress(status))
            current = plan_of(status)
            if current is None or current.plan_id != plan.plan_id:
                break  # lifted, or a new round took over
            if time.time() >= plan.sigterm_at:
                if not terminating:  # also when no worker is there to say so
                    phases.advance_phase(
                        self.service, emergency_id, PHASE_TERMINATING, "monitor", plan.plan_id
                    )
                    terminating = True
                finished = not fleet.unfinished_workers(self.service, emergency_id, plan.plan_id)
                if finished:
                    phases.advance_phase(
                        self.service, emergency_id, PHASE_TERMINATED, "monitor", plan.plan_id
                    )
                    break
            if time.monotonic() >= deadline:
                timed_out = True
                break
            time.sleep(WATCH_INTERVAL)
        result = self.termination_result(plan, emergency_id)
        result.finished, result.timed_out = finished, timed_out
        if on_progress is not None:
            on_progress(self.emergency_progress())
        return result

    def termination_result(self, plan: TerminationPlan, emergency_id: str) -> TerminationResult:
        """Where the round of ``plan`` stands now, job by job (from SQL and Redis)."""
        status = self.service.state.load()
        records = JobStore(self.service.db).find(
            kind=KIND_TERMINATED, activation_id=status.activation_id, limit=None
        )
        mine = [
            r
            for r in records
            if r.created_at is None or r.created_at.timestamp() >= plan.started_at - 1.0
        ]
        by_outcome = {o: [r.to_dict() for r in mine if r.outcome == o] for o in OUTCOMES}
        progress = fleet.read_progress(self.service, emergency_id)
        round_progress = [p for p in progress.values() if p.plan_id == plan.plan_id]
        unterminable = [
            {"task_id": job, "worker": p.hostname, "pool": p.pool}
            for p in round_progress
            for job in p.unterminable
        ]
        running = fleet.registry_entries(self.service)
        snapshot = self._snapshots.get(plan.plan_id, [])
        accounted = {r.original_id for r in mine if r.outcome in OUTCOMES}
        accounted |= {str(u["task_id"]) for u in unterminable}
        still = {e.task_id for e in running}
        return TerminationResult(
            emergency_id=emergency_id,
            plan=plan,
            phase=status.emergency_phase if status.is_active else None,
            finished=not fleet.unfinished_workers(self.service, emergency_id, plan.plan_id),
            timed_out=False,
            running_at_start=snapshot,
            finished_on_their_own=[j for j in snapshot if j not in accounted and j not in still],
            by_outcome=by_outcome,
            unterminable=unterminable,
            still_running=[vars(e) for e in running],
            workers=[p.to_dict() for p in round_progress],
        )

    # -- lifting -------------------------------------------------------------------
    def check_deactivation(self) -> DeactivationCheck:
        """The core checks (after reaping dead workers' entries) plus, with an app, the
        registry against what every live worker reports running."""
        from workers.registry import JobRegistry

        with contextlib.suppress(*REDIS_ERRORS):
            JobRegistry(self.service).reap()
        extra: tuple[str, ...] = ()
        if self.app is not None:
            extra = tuple(self._compare_with_workers())
        check = check_deactivation(self.service, extra_problems=extra)
        checked = (*check.checked, "workers" if self.app is not None else "workers: no app")
        return DeactivationCheck(check.emergency_id, check.problems, check.notes, checked)

    def _compare_with_workers(self) -> list[str]:
        # The registry is read before and after asking, so a job that starts or ends
        # meanwhile is not mistaken for an inconsistency.
        live = {str(n.info.get("hostname")) for n in fleet.live_workers(self.service).values()}
        before = {e.task_id: e for e in fleet.registry_entries(self.service)}
        try:
            # ``limit``: done as soon as every live worker answered, not at the timeout.
            inspect = self.app.control.inspect(timeout=INSPECT_TIMEOUT, limit=len(live) or None)
            replies = inspect.active() or {}
        except Exception as exc:
            return [f"the workers could not be asked what they run: {exc}"]
        after = {e.task_id: e for e in fleet.registry_entries(self.service)}
        problems = []
        for host in sorted(live - set(replies)):
            problems.append(f"worker {host} did not answer: its jobs cannot be compared")
        reported = {job["id"]: (host, job) for host, jobs in replies.items() for job in jobs}
        for task_id, (host, job) in reported.items():
            if task_id not in before and task_id not in after:
                problems.append(f"{job.get('name')}[{task_id}] runs on {host}, not in the registry")
        for task_id, entry in before.items():
            if task_id in after and entry.worker in replies and task_id not in reported:
                problems.append(
                    f"the registry has {entry.name}[{task_id}] on {entry.worker}; "
                    "the worker does not run it"
                )
        return problems

    def _requeue(self, actor: str) -> str:
        if self.app is None:
            return "pending"  # workers that took part requeue, or the beat check does
        if not self.service.state.load().recovery_pending:
            # The lift's ``maintenance_disabled`` receiver (``signals.install``) already
            # requeued everything; it leaves ``recovery_pending`` set if anything is left.
            return "done"
        from workers.requeue import requeue_jobs

        report = requeue_jobs(self.app, self.service, actor=actor)
        if report.failed:
            log.error("emergency: %d job(s) not requeued: %s", len(report.failed), report.failed)
            return "partial"
        return "done"
