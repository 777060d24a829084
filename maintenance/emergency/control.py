"""``EmergencyControl``: emergency maintenance as any process can drive it, no Celery needed.

Declaring, narrowing to critical admins, session cleanup, progress, the
deactivation checks and the report. Running jobs are stopped by the workers
themselves from the plan in the status, so a web node without a Celery app
can declare an emergency too. The Celery side's ``EmergencyMaintenanceHandler``
extends this class (monitoring, consistency checks against the workers,
the recovery requeue) and attaches itself to its service, where
``controller_for(service)`` finds it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..domain.emergency_plan import DEFAULT_GRACE, DEFAULT_KILL_AFTER, emergency_facts, plan_of
from ..domain.validation import validate_actor
from ..errors import MaintenanceError, NotFound
from ..fencing import ActivationResult
from ..store.jobs import KIND_TERMINATED, REQUEUED, TERMINATED, JobStore
from . import activation, fleet, phases
from .activation import EmergencyActivation, Invalidator
from .deactivation import DeactivationCheck, check_deactivation, current_emergency, lift_emergency
from .report import create_emergency_report

if TYPE_CHECKING:
    from ..domain.status import MaintenanceStatus
    from ..service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.emergency")
ATTRIBUTE = "emergency"


@dataclass(frozen=True)
class EmergencyProgress:
    """Where the current emergency stands (for progress displays and the API)."""

    emergency_id: str | None
    active: bool
    phase: str | None
    plan: dict[str, Any] | None
    counts: dict[str, int]
    running: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    now: float = field(default_factory=time.time)

    @property
    def seconds_to_sigterm(self) -> float | None:
        """Grace left (None without a plan)."""
        return max(0.0, self.plan["sigterm_at"] - self.now) if self.plan else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "emergency_id": self.emergency_id,
            "active": self.active,
            "phase": self.phase,
            "plan": self.plan,
            "counts": self.counts,
            "running": self.running,
            "workers": self.workers,
            "seconds_to_sigterm": self.seconds_to_sigterm,
        }


@dataclass(frozen=True)
class EmergencyDeactivation:
    """What lifting an emergency did."""

    emergency_id: str | None
    activation: ActivationResult
    check: DeactivationCheck
    requeue: str  # done | pending | skipped
    requeued: list[tuple[str, str]] = field(default_factory=list)
    not_rerun_safe: list[dict[str, Any]] = field(default_factory=list)
    report_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.activation.to_dict(),
            "emergency_id": self.emergency_id,
            "check": self.check.to_dict(),
            "requeue": self.requeue,
            "requeued": [{"original_id": o, "new_id": n} for o, n in self.requeued],
            "not_rerun_safe": self.not_rerun_safe,
            "report_id": self.report_id,
        }


class EmergencyControl:
    """Emergency maintenance for one service (see the module docstring)."""

    def __init__(self, service: EnhancedMaintenanceModeService) -> None:
        self.service = service

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
    ) -> EmergencyActivation:
        """EMERGENCY now (fenced), non-admins out, running jobs stopped by their workers:
        asked to abort, SIGTERM after ``grace_period``, SIGKILL ``kill_after`` later."""
        return activation.activate_emergency(
            self.service,
            reason,
            triggered_by,
            grace_period=grace_period,
            kill_after=kill_after,
            trigger=trigger,
            duration=duration,
            critical_admin_only=critical_admin_only,
            wait=wait,
            invalidate=invalidate,
        )

    def force_session_cleanup(
        self, actor: str = "system", *, wait: float | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Every non-admin session gone now; non-admin logins refused."""
        return activation.force_session_cleanup(self.service, actor, wait=wait, reason=reason)

    def enable_critical_admin_only(
        self, actor: str = "system", *, wait: float | None = None
    ) -> ActivationResult:
        """Only administrators flagged critical get through while the emergency lasts."""
        return activation.enable_critical_admin_only(self.service, actor, wait=wait)

    # -- watching ----------------------------------------------------------------
    def emergency_progress(self) -> EmergencyProgress:
        """Phase, plan, outcome counts, running jobs and each worker's ladder."""
        return self._progress(self.service.state.load())

    def _progress(self, status: MaintenanceStatus) -> EmergencyProgress:
        eid = status.emergency_id
        plan = plan_of(status)
        if eid is None:
            return EmergencyProgress(None, False, None, None, {}, [], [])
        counts = fleet.read_counts(self.service, eid)
        running = [vars(e) for e in fleet.registry_entries(self.service)]
        workers = [p.to_dict() for p in fleet.read_progress(self.service, eid).values()]
        return EmergencyProgress(
            emergency_id=eid,
            active=plan is not None or bool(emergency_facts(status)),
            phase=status.emergency_phase if status.is_active else None,
            plan=plan.to_dict() if plan else None,
            counts=counts,
            running=running,
            workers=workers,
        )

    # -- lifting -------------------------------------------------------------------
    def check_deactivation(self) -> DeactivationCheck:
        """What stands in the way of lifting the emergency now."""
        return check_deactivation(self.service)

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

        Refused (``DeactivationRefused``, a ``ConflictError``) while a check
        finds problems, unless ``force``. Without a Celery app here, the
        requeue is left to the workers and beat (``recovery_pending``).
        """
        actor = validate_actor(actor, "actor")
        status = current_emergency(self.service)
        plan = plan_of(status)
        if status.emergency_id and plan is not None:
            phases.finish_if_done(self.service, status.emergency_id, actor, plan.plan_id)
        check = self.check_deactivation()
        result = lift_emergency(
            self.service, actor, check, requeue=requeue, force=force, wait=wait, reason=reason
        )
        outcome = self._requeue(actor) if requeue else "skipped"
        return self._finish(status, result, check, outcome)

    def _requeue(self, actor: str) -> str:
        """Republish held-back jobs; the core has no Celery app, so it is left pending."""
        return "pending"

    def _finish(
        self, status: Any, result: ActivationResult, check: DeactivationCheck, outcome: str
    ) -> EmergencyDeactivation:
        eid = status.emergency_id
        report_id = None
        if eid:
            try:
                report_id = create_emergency_report(self.service, eid)["id"]
            except MaintenanceError as exc:
                log.error("emergency %s: report not written: %s", eid, exc)
        records = JobStore(self.service.db).find(activation_id=status.activation_id, limit=None)
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
        )

    # -- reporting ------------------------------------------------------------------
    def create_emergency_report(self, emergency_id: str | None = None) -> dict[str, Any]:
        """Build and store the report of ``emergency_id`` (default: the latest emergency)."""
        eid = emergency_id or self.service.state.load().emergency_id
        if not eid:
            raise NotFound("no emergency has been declared")
        return create_emergency_report(self.service, eid)


def attach(service: EnhancedMaintenanceModeService, controller: EmergencyControl) -> None:
    """Make ``controller`` the one ``controller_for(service)`` returns (``service.emergency``)."""
    setattr(service, ATTRIBUTE, controller)


def controller_for(service: EnhancedMaintenanceModeService) -> EmergencyControl:
    """The emergency controller attached to ``service``, else a Celery-less one."""
    found = getattr(service, ATTRIBUTE, None)
    if isinstance(found, EmergencyControl):
        return found
    return EmergencyControl(service)
