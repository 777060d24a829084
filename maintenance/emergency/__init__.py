"""Emergency maintenance, framework-free: declare, lock down, watch, lift, report.

Running jobs are stopped by the Celery side (``workers.emergency``), which
also provides ``EmergencyMaintenanceHandler``; this package is what every
process (web, CLI, workers) shares. See ``docs/runbook-emergency.md``.
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
from .activation import EmergencyActivation, activate_emergency
from .control import (
    EmergencyControl,
    EmergencyDeactivation,
    EmergencyProgress,
    attach,
    controller_for,
)
from .deactivation import DeactivationCheck, DeactivationRefused, check_deactivation
from .report import build_emergency_report, create_emergency_report

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
    "EmergencyControl",
    "EmergencyDeactivation",
    "EmergencyProgress",
    "TerminationPlan",
    "activate_emergency",
    "attach",
    "build_emergency_report",
    "check_deactivation",
    "controller_for",
    "create_emergency_report",
    "plan_of",
]
