"""``EmergencyController``: the one emergency controller, framework-free.

It declares (fenced EMERGENCY carrying the termination plan, non-admin logins
refused and sessions removed, the trigger on record), narrows the emergency to
critical admins, sweeps sessions, starts and follows termination rounds, checks
and lifts, and writes the report. Running jobs are stopped by the workers
themselves from the plan in the status, so any process can drive an emergency.
What needs the task queue -- asking the workers what they run, requeueing what was
cut off -- goes through a ``FleetAdapter`` (``workers.emergency.CeleryFleet``);
without one the workers and beat requeue.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ..domain.emergency_plan import (
    DEFAULT_GRACE,
    DEFAULT_KILL_AFTER,
    EXTRA_KEY,
    MAX_GRACE,
    MAX_KILL_AFTER,
    PHASE_GRACE,
    PHASE_TERMINATED,
    TerminationPlan,
    emergency_facts,
    is_emergency,
    parse_seconds,
    plan_of,
    validate_trigger,
)
from ..domain.modes import MaintenanceMode
from ..domain.validation import validate_actor, validate_note, validate_reason, validate_wait
from ..errors import ConflictError, DeactivationRefused, MaintenanceError, NotFound
from ..fencing import ActivationResult
from ..job_flags import JobFlags
from ..job_registry import JobRegistry
from ..redisconn import REDIS_ERRORS
from ..session_invalidation import invalidator
from ..store.jobs import KIND_TERMINATED, REQUEUED, TERMINATED, JobStore
from . import phases, rounds
from .deactivation import DeactivationCheck, check_deactivation, current_emergency
from .report import create_emergency_report
from .results import (
    EmergencyActivation,
    EmergencyDeactivation,
    EmergencyProgress,
    TerminationResult,
)

if TYPE_CHECKING:
    from ..domain.status import MaintenanceStatus
    from ..service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.emergency")
ATTRIBUTE = "emergency"
ABORT_TTL = 24 * 3600
#: What writing the report after a lift may fail with (reported, not raised).
_AFTER_LIFT_ERRORS: tuple[type[BaseException], ...] = (MaintenanceError, *REDIS_ERRORS)

#: ``invalidate(actor, wait=..., reason=...)`` -> an object with ``to_dict()``: how
#: non-admin sessions are removed (the web app's manager knows its session store).
Invalidator = Callable[..., Any]
#: ``write(plan, running)``: puts a new round's plan into the status (fenced).
_RoundWriter = Callable[[TerminationPlan, tuple[str, ...]], ActivationResult]


class FleetAdapter(Protocol):
    """What the controller asks of the task queue's side of the fleet."""

    def check(self, service: EnhancedMaintenanceModeService) -> tuple[str, list[str]]:
        """Before a lift: ``(what was checked, problems found)``."""
        ...

    def requeue(self, service: EnhancedMaintenanceModeService, actor: str) -> str:
        """After a lift: republish what was held back; ``done``, ``partial`` or ``pending``."""
        ...


class EmergencyController:
    """Emergency maintenance for one service (see the module docstring).

    ``watch``: follow each round this controller starts in a background thread
    (``self.termination`` holds its result), moving the phases on even when no
    worker reports.
    """

    def __init__(
        self,
        service: EnhancedMaintenanceModeService,
        fleet: FleetAdapter | None = None,
        *,
        watch: bool = False,
    ) -> None:
        self.service = service
        self.fleet = fleet
        self.watch = watch
        #: The background watch of the last round started here, if watched.
        self.termination: Future[TerminationResult] | None = None
        #: Jobs running when each round (by plan id) started.
        self._snapshots: dict[str, list[str]] = {}

    # -- declaring -------------------------------------------------------------
    def activate_emergency_mode(
        self,
        reason: str,
        triggered_by: str,
        grace_period: float | str = DEFAULT_GRACE,
        kill_after: float | str = DEFAULT_KILL_AFTER,
        trigger: str = "person",
        *,
        duration: str | int | float | timedelta | None = None,
        critical_admin_only: bool = False,
        wait: float | None = None,
        invalidate: Invalidator | None = None,
        watch: bool | None = None,
    ) -> EmergencyActivation:
        """EMERGENCY now (fenced), non-admins out, running jobs stopped by their workers:
        asked to abort, SIGTERM after ``grace_period``, SIGKILL ``kill_after`` later.

        Everything is validated before anything changes. Refuses (``ConflictError``)
        while an emergency is already on: change it with ``enable_maintenance``, or
        lift it first. Logins of non-admins are refused from the same status version.
        ``watch`` overrides the controller's own setting for this round.
        """
        service = self.service
        reason = validate_reason(reason)
        actor = validate_actor(triggered_by, "triggered_by")
        trigger = validate_trigger(trigger)

        def declare(plan: TerminationPlan, running: tuple[str, ...]) -> ActivationResult:
            current = service.state.load()
            if is_emergency(current):
                raise ConflictError(
                    f"emergency {current.emergency_id} is already active; lift it first",
                    current_version=current.version,
                )
            facts = {"plan": plan.to_dict(), "trigger": trigger, "triggered_by": actor}
            return service.enable_maintenance(
                reason,
                duration,
                mode=MaintenanceMode.EMERGENCY,
                enabled_by=actor,
                wait=wait,
                expected_version=current.version,
                critical_admin_only=critical_admin_only,
                block_login=True,
                details={EXTRA_KEY: facts, "via": trigger},
            )

        plan, running, result = self._start_round(grace_period, kill_after, trigger, actor, declare)
        emergency_id = str(result.status.emergency_id)
        # Declared: from here on a failure is reported, never raised.
        errors: dict[str, str] = {}
        phased = result
        try:
            phased = service.update_status(
                actor,
                "emergency_phase",
                details={"phase": PHASE_GRACE},
                emergency_phase=PHASE_GRACE,
            )
        except MaintenanceError as exc:
            errors["phase"] = f"the grace phase is not recorded ({exc})"
        sessions, sessions_error = self._sweep(invalidate, actor, wait, reason)
        self._record(
            errors,
            "emergency_activated",
            actor,
            reason,
            {
                "emergency_id": emergency_id,
                "trigger": trigger,
                "triggered_by": actor,
                "grace_period": plan.grace,
                "kill_after": plan.kill_after,
                "plan": plan.to_dict(),
                "fenced": result.fenced,
                "propagation": result.propagation,
                "applied_nodes": len(result.applied_nodes),
                "lagging_nodes": [str(n.get("node_id")) for n in result.lagging_nodes],
                "waited_ms": round(result.waited_seconds * 1000, 3),
                "running_jobs": list(running[:1000]),
                "sessions": sessions,
            },
            result.status.activation_id,
        )
        log.warning(
            "EMERGENCY %s declared by %s (trigger: %s): %s; grace %.3gs, kill after %.3gs; "
            "fenced=%s, %d job(s) running",
            emergency_id,
            actor,
            trigger,
            reason,
            plan.grace,
            plan.kill_after,
            result.fenced,
            len(running),
        )
        if self.watch if watch is None else watch:
            self.termination = self._watch_in_background(plan, emergency_id)
        return EmergencyActivation(
            emergency_id=emergency_id,
            # Fencing facts of the switch itself; the newest status (with its phase) to show.
            activation=replace(result, status=phased.status),
            plan=plan,
            trigger=trigger,
            triggered_by=actor,
            sessions=sessions,
            sessions_error=sessions_error,
            running_at_activation=running,
            errors=errors,
        )

    def _record(
        self,
        errors: dict[str, str],
        kind: str,
        actor: str,
        reason: str | None,
        details: dict[str, Any],
        activation_id: str | None = None,
    ) -> None:
        """An event-log line after a commit: a failure is noted in ``errors``, not raised."""
        try:
            self.service.record_event(kind, actor, reason, details, activation_id=activation_id)
        except MaintenanceError as exc:
            log.warning("emergency: %s not recorded: %s", kind, exc)
            errors["event_log"] = f"{kind} not recorded in the event log ({exc})"

    def enable_critical_admin_only(
        self, actor: str = "system", *, wait: float | None = None
    ) -> ActivationResult:
        """Only administrators flagged critical get through while the emergency lasts."""
        actor = validate_actor(actor, "actor")
        current = self.service.state.load()
        if not is_emergency(current):
            raise ConflictError(
                "critical-admin-only needs an active emergency", current_version=current.version
            )
        result = self.service.update_status(
            actor,
            "critical_admin_only_enabled",
            wait=wait,
            expect=is_emergency,
            critical_admin_only=True,
        )
        log.warning("emergency %s: critical admins only (by %s)", result.status.emergency_id, actor)
        return result

    def force_session_cleanup(
        self, actor: str = "system", *, wait: float | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Every non-admin session gone now; non-admin logins refused from here on
        (the ``force_session_cleanup`` command, as the host's own code)."""
        # The command layer builds on this controller, so it is imported when used.
        from ..commands.actor import Actor
        from ..commands.sessions import force_session_cleanup

        who = Actor.operator(validate_actor(actor, "actor"), channel="python")
        return dict(force_session_cleanup(self.service, who, wait=wait, reason=reason).data)

    def _sweep(
        self, invalidate: Invalidator | None, actor: str, wait: float | None, reason: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        chosen = invalidate or invalidator(self.service)
        try:
            result = chosen(actor, wait=wait, reason=f"emergency: {reason}")
        except Exception as exc:
            # The lockdown stands (logins refused, stale sessions turned away by the
            # epoch on their next request); say why the sweep did not happen.
            log.warning("emergency: non-admin sessions not invalidated: %s", exc)
            return None, str(exc)
        return result.to_dict(), None

    # -- termination rounds ------------------------------------------------------
    def terminate_running_jobs(
        self,
        grace_period: float | str = DEFAULT_GRACE,
        kill_after: float | str = DEFAULT_KILL_AFTER,
        *,
        actor: str = "system",
        wait: bool = True,
        timeout: float | None = None,
        on_progress: rounds.ProgressCallback | None = None,
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
            plan = self._new_round(status, grace_period, kill_after, actor)
        if not wait:
            return self.termination_result(plan, eid)
        return rounds.watch_round(
            self.service,
            plan,
            eid,
            self._snapshots.get(plan.plan_id, []),
            timeout=timeout,
            on_progress=on_progress,
        )

    def _new_round(
        self, status: MaintenanceStatus, grace: float | str, kill: float | str, actor: str
    ) -> TerminationPlan:
        facts = emergency_facts(status)
        eid = status.emergency_id

        def write(plan: TerminationPlan, running: tuple[str, ...]) -> ActivationResult:
            return self.service.update_status(
                actor,
                "emergency_termination_started",
                details={"running_jobs": list(running[:1000])},
                extra_changes={EXTRA_KEY: {**facts, "plan": plan.to_dict()}},
                expect=lambda s: is_emergency(s) and s.emergency_id == eid,
                emergency_phase=PHASE_GRACE,
            )

        trigger = str(facts.get("trigger") or "person")
        return self._start_round(grace, kill, trigger, actor, write)[0]

    def _start_round(
        self,
        grace_period: float | str,
        kill_after: float | str,
        trigger: str,
        triggered_by: str,
        write: _RoundWriter,
    ) -> tuple[TerminationPlan, tuple[str, ...], ActivationResult]:
        """Check the timing, note the running jobs, make the plan, have ``write`` put it
        in the status, then say so to every job (the fleet-wide abort flag).

        Nothing is written before ``write`` (which may still refuse, e.g. on a conflict).
        """
        grace = parse_seconds(grace_period, field="grace_period", maximum=MAX_GRACE)
        kill = parse_seconds(kill_after, field="kill_after", maximum=MAX_KILL_AFTER)
        service = self.service
        try:
            running = tuple(j.task_id for j in JobRegistry(service.redis, service.keys).running())
        except REDIS_ERRORS:
            running = ()
        plan = TerminationPlan.new(grace, kill, trigger=trigger, triggered_by=triggered_by)
        self._snapshots[plan.plan_id] = list(running)
        result = write(plan, running)
        with contextlib.suppress(*REDIS_ERRORS):
            flags = JobFlags(service.redis, service.keys)
            flags.abort_all(str(result.status.emergency_id), ABORT_TTL)
        return plan, running, result

    def _watch_in_background(
        self, plan: TerminationPlan, emergency_id: str
    ) -> Future[TerminationResult]:
        future: Future[TerminationResult] = Future()
        running = self._snapshots.get(plan.plan_id, [])

        def run() -> None:
            try:
                future.set_result(rounds.watch_round(self.service, plan, emergency_id, running))
            except BaseException as exc:  # handed to whoever reads the future
                future.set_exception(exc)

        threading.Thread(target=run, name="maintenance-emergency-watch", daemon=True).start()
        return future

    def termination_result(self, plan: TerminationPlan, emergency_id: str) -> TerminationResult:
        """Where the round of ``plan`` stands now, job by job (from SQL and Redis)."""
        running = self._snapshots.get(plan.plan_id, [])
        return rounds.round_result(self.service, plan, emergency_id, running)

    def emergency_progress(self) -> EmergencyProgress:
        """Phase, plan, outcome counts, running jobs and each worker's ladder."""
        return rounds.emergency_progress(self.service, self.service.state.load())

    # -- lifting -------------------------------------------------------------------
    def check_deactivation(self) -> DeactivationCheck:
        """What stands in the way of lifting the emergency now (with the fleet's findings)."""
        extra = None
        if self.fleet is not None:
            try:
                extra = self.fleet.check(self.service)
            except REDIS_ERRORS as exc:
                extra = (
                    "workers",
                    [f"the workers could not be checked: Redis unavailable ({exc})"],
                )
        return check_deactivation(self.service, extra=extra)

    def deactivate_emergency_mode(
        self,
        actor: str,
        *,
        requeue: bool = True,
        force: bool = False,
        wait: float | None = None,
        reason: str | None = None,
    ) -> EmergencyDeactivation:
        """Check, lift, requeue what was cut off (exactly once), write the report.

        Refused (``DeactivationRefused``, a ``ConflictError``) while a check finds
        problems, unless ``force``. The fleet-wide abort flag goes first; jobs are
        told to stop by the plan in the status, which the lift ends. With ``requeue``
        the status says ``recovery_pending`` and terminated and deferred jobs are
        republished exactly once: here through the fleet adapter, else by the
        workers and beat.
        """
        actor = validate_actor(actor, "actor")
        wait = validate_wait(wait)
        reason = validate_note(reason)
        service = self.service
        status = current_emergency(service)
        plan = plan_of(status)
        if status.emergency_id and plan is not None:
            phases.finish_if_done(service, status.emergency_id, actor, plan.plan_id)
        check = self.check_deactivation()
        # Still on? (Finishing the phase above may also have moved the version on.)
        version = current_emergency(service).version
        if not check.ok and not force:
            service.record_event(
                "emergency_deactivation_refused",
                actor,
                reason,
                {"emergency_id": check.emergency_id, "problems": list(check.problems)},
            )
            raise DeactivationRefused(check, version)
        service.record_event(
            "emergency_deactivated",
            actor,
            reason,
            {
                "emergency_id": check.emergency_id,
                "forced": bool(check.problems),
                "problems": list(check.problems),
                "requeue": requeue,
            },
        )
        with contextlib.suppress(*REDIS_ERRORS):
            JobFlags(service.redis, service.keys).clear_abort_all()
        result = service.disable_maintenance(actor, requeue=requeue, wait=wait, reason=reason)
        log.warning(
            "emergency %s lifted by %s%s",
            check.emergency_id,
            actor,
            f" (forced past {len(check.problems)} problem(s))" if check.problems else "",
        )
        errors: dict[str, str] = {}
        if not requeue:
            outcome = "skipped"
        elif self.fleet is None:
            outcome = "pending"  # workers that took part requeue, or the beat check does
        else:
            try:
                outcome = self.fleet.requeue(service, actor)
            except Exception as exc:  # lifted either way; the workers and beat requeue later
                log.warning("emergency: requeue after the lift failed: %s", exc)
                outcome = "partial"
                errors["requeue"] = f"requeue failed ({exc}); run `maintenance recover`"
        return self._lifted(status, result, check, outcome, errors)

    def _lifted(
        self,
        status: MaintenanceStatus,
        result: ActivationResult,
        check: DeactivationCheck,
        outcome: str,
        errors: dict[str, str],
    ) -> EmergencyDeactivation:
        eid = status.emergency_id
        report_id = None
        if eid:
            try:
                report_id = create_emergency_report(self.service, eid)["id"]
            except _AFTER_LIFT_ERRORS as exc:
                log.warning("emergency %s: report not written: %s", eid, exc)
                errors["report"] = f"report not written ({exc})"
        try:
            records = JobStore(self.service.db).find(activation_id=status.activation_id, limit=None)
        except MaintenanceError as exc:
            errors["jobs"] = f"the held-back jobs cannot be listed ({exc})"
            records = []
        return EmergencyDeactivation(
            emergency_id=eid,
            activation=result,
            check=check,
            requeue=outcome,
            requeued=[(r.original_id, str(r.requeued_id)) for r in records if r.state == REQUEUED],
            not_rerun_safe=[
                r.to_dict()
                for r in records
                if r.kind == KIND_TERMINATED and not r.rerun_safe and r.state == TERMINATED
            ],
            report_id=report_id,
            errors=errors,
        )

    # -- reporting ------------------------------------------------------------------
    def create_emergency_report(self, emergency_id: str | None = None) -> dict[str, Any]:
        """Build and store the report of ``emergency_id`` (default: the latest emergency)."""
        eid = emergency_id or self.service.state.load().emergency_id
        if not eid:
            raise NotFound("no emergency has been declared")
        return create_emergency_report(self.service, eid)


def attach(service: EnhancedMaintenanceModeService, controller: EmergencyController) -> None:
    """Make ``controller`` the one ``controller_for(service)`` returns (``service.emergency``)."""
    setattr(service, ATTRIBUTE, controller)


def controller_for(service: EnhancedMaintenanceModeService) -> EmergencyController:
    """The emergency controller attached to ``service``, else one without a fleet adapter."""
    found = getattr(service, ATTRIBUTE, None)
    if isinstance(found, EmergencyController):
        return found
    return EmergencyController(service)
