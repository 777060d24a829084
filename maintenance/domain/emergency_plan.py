"""The termination plan an emergency carries in its status, its phases and job outcomes.

The plan travels inside the fenced status (``status.extra["emergency"]``), so
every worker main process knows it before the activation returns and drives
its own termination ladder from absolute deadlines -- whether or not the
process that declared the emergency has a Celery app.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ValidationError
from .modes import MaintenanceMode
from .status import MaintenanceStatus

PHASE_GRACE = "grace"
PHASE_TERMINATING = "terminating"
PHASE_TERMINATED = "terminated"
PHASES = (PHASE_GRACE, PHASE_TERMINATING, PHASE_TERMINATED)

#: Who or what declared the emergency.
TRIGGERS = ("person", "cli", "api", "automated")

#: How a stopped job ended: it honoured the abort flag, SIGTERM, or SIGKILL; or it ended
#: because maintenance refused one of its writes or publishes (interrupted).
OUTCOME_ABORTED = "aborted"
OUTCOME_TERMINATED = "terminated"
OUTCOME_KILLED = "killed"
OUTCOME_INTERRUPTED = "interrupted"
OUTCOMES = (OUTCOME_ABORTED, OUTCOME_TERMINATED, OUTCOME_KILLED, OUTCOME_INTERRUPTED)
#: Counted beside the outcomes: jobs on pools that cannot terminate (threads, solo).
UNTERMINABLE = "unterminable"

#: Key of the emergency's facts in ``status.extra``.
EXTRA_KEY = "emergency"
#: Default timing of a termination round (seconds): grace period, then SIGTERM to SIGKILL.
DEFAULT_GRACE = 30.0
DEFAULT_KILL_AFTER = 10.0
MAX_GRACE = 3600.0
MAX_KILL_AFTER = 600.0
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_seconds(value: object, *, field: str, maximum: float) -> float:
    """Seconds from ``30``, ``1.5``, ``"30s"``, ``"500ms"`` or ``"2m"``; 0 is allowed."""
    if isinstance(value, bool) or value is None:
        raise ValidationError(f"{field} must be a number of seconds", field=field)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _SECONDS.match(str(value).lower())
        if match is None:
            raise ValidationError(
                f"{field} {value!r} is not a duration (use e.g. 30s, 500ms, 2m)", field=field
            )
        seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if not 0 <= seconds <= maximum:
        raise ValidationError(f"{field} must be between 0 and {maximum:g} seconds", field=field)
    return seconds


def validate_trigger(trigger: object) -> str:
    """One of ``TRIGGERS``."""
    if trigger not in TRIGGERS:
        raise ValidationError(
            f"trigger must be one of {', '.join(TRIGGERS)}, got {trigger!r}", field="trigger"
        )
    return str(trigger)


@dataclass(frozen=True)
class TerminationPlan:
    """When running jobs are asked to stop, SIGTERMed and SIGKILLed (unix seconds)."""

    plan_id: str
    started_at: float
    grace: float
    kill_after: float
    trigger: str = "person"
    triggered_by: str | None = None

    @classmethod
    def new(
        cls,
        grace: float,
        kill_after: float,
        *,
        trigger: str = "person",
        triggered_by: str | None = None,
    ) -> TerminationPlan:
        """A plan whose grace period starts now."""
        return cls(
            plan_id=uuid.uuid4().hex[:12],
            started_at=time.time(),
            grace=grace,
            kill_after=kill_after,
            trigger=trigger,
            triggered_by=triggered_by,
        )

    @property
    def sigterm_at(self) -> float:
        """End of the grace period: jobs still running get SIGTERM."""
        return self.started_at + self.grace

    @property
    def kill_at(self) -> float:
        """Jobs that survived SIGTERM get SIGKILL."""
        return self.sigterm_at + self.kill_after

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with the two deadlines, for readers)."""
        return {**asdict(self), "sigterm_at": self.sigterm_at, "kill_at": self.kill_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TerminationPlan:
        """Inverse of ``to_dict``."""
        return cls(
            plan_id=str(data["plan_id"]),
            started_at=float(data["started_at"]),
            grace=float(data["grace"]),
            kill_after=float(data["kill_after"]),
            trigger=str(data.get("trigger") or "person"),
            triggered_by=data.get("triggered_by"),
        )


def emergency_facts(status: MaintenanceStatus) -> dict[str, Any]:
    """``status.extra["emergency"]`` (empty when absent)."""
    raw = status.extra.get(EXTRA_KEY)
    return dict(raw) if isinstance(raw, dict) else {}


def is_emergency(status: MaintenanceStatus) -> bool:
    """Whether ``status`` is an active EMERGENCY."""
    return status.is_active and status.mode is MaintenanceMode.EMERGENCY


def plan_of(status: MaintenanceStatus) -> TerminationPlan | None:
    """The plan in force: only while EMERGENCY is on and its status carries one."""
    if not is_emergency(status):
        return None
    raw = emergency_facts(status).get("plan")
    if not isinstance(raw, dict):
        return None
    try:
        return TerminationPlan.from_dict(raw)
    except (KeyError, TypeError, ValueError):
        return None
