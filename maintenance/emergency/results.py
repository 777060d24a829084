"""What the emergency controller returns: a declaration, a termination round, where the
emergency stands, and a lift -- each with its JSON-ready form."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..domain.emergency_plan import TerminationPlan
from ..fencing import ActivationResult
from .deactivation import DeactivationCheck


@dataclass(frozen=True)
class EmergencyActivation:
    """What declaring an emergency did."""

    emergency_id: str
    activation: ActivationResult
    plan: TerminationPlan
    trigger: str
    triggered_by: str
    sessions: dict[str, Any] | None = None
    sessions_error: str | None = None
    running_at_activation: tuple[str, ...] = ()
    #: What failed after the declaration committed (phase, event_log), and why.
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def fenced(self) -> bool:
        """Whether every live node applied EMERGENCY before the call returned."""
        return self.activation.fenced

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the fenced ``ActivationResult`` plus the emergency's facts)."""
        return {
            **self.activation.to_dict(),
            "emergency_id": self.emergency_id,
            "report_id": self.emergency_id,
            "plan": self.plan.to_dict(),
            "trigger": self.trigger,
            "triggered_by": self.triggered_by,
            "sessions": self.sessions,
            "sessions_error": self.sessions_error,
            "running_jobs": len(self.running_at_activation),
            "errors": dict(self.errors),
        }


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
        """Jobs that ended with ``outcome`` (aborted, terminated, killed, interrupted)."""
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
    requeue: str  # done | partial | pending | skipped
    requeued: list[tuple[str, str]] = field(default_factory=list)
    not_rerun_safe: list[dict[str, Any]] = field(default_factory=list)
    report_id: str | None = None
    #: What failed after the lift committed (requeue, report, jobs), and why.
    errors: dict[str, str] = field(default_factory=dict)

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
            "errors": dict(self.errors),
        }
