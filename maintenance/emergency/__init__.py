"""Emergency maintenance, framework-free: one controller that declares, locks down, follows
termination rounds, lifts and reports.

Running jobs are stopped by the workers themselves (``workers.emergency``), which
also provide the Celery fleet adapter and ``EmergencyMaintenanceHandler`` (this
controller with it); this package is what every process (web, CLI, workers)
shares. See ``docs/runbook-emergency.md``.
"""

from ..domain.emergency_plan import (
    OUTCOME_ABORTED,
    OUTCOME_KILLED,
    OUTCOME_TERMINATED,
    PHASE_GRACE,
    PHASE_TERMINATED,
    PHASE_TERMINATING,
    TRIGGERS,
    TerminationPlan,
    plan_of,
)
from ..errors import DeactivationRefused
from .controller import EmergencyController, FleetAdapter, Invalidator, attach, controller_for
from .deactivation import DeactivationCheck, check_deactivation
from .report import build_emergency_report, create_emergency_report
from .results import (
    EmergencyActivation,
    EmergencyDeactivation,
    EmergencyProgress,
    TerminationResult,
)

__all__ = [
    "OUTCOME_ABORTED",
    "OUTCOME_KILLED",
    "OUTCOME_TERMINATED",
    "PHASE_GRACE",
    "PHASE_TERMINATED",
    "PHASE_TERMINATING",
    "TRIGGERS",
    "DeactivationCheck",
    "DeactivationRefused",
    "EmergencyActivation",
    "EmergencyController",
    "EmergencyDeactivation",
    "EmergencyProgress",
    "FleetAdapter",
    "Invalidator",
    "TerminationPlan",
    "TerminationResult",
    "attach",
    "build_emergency_report",
    "check_deactivation",
    "controller_for",
    "create_emergency_report",
    "plan_of",
]
