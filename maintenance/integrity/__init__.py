"""Data integrity during maintenance: a transaction guard for the app's SQLAlchemy sessions
and consistency checks that run when maintenance ends. See ``docs/data-integrity.md``."""

from .auto import ChecksOnMaintenanceEnd, run_checks_when_maintenance_ends
from .consistency import (
    Check,
    CheckRegistry,
    CheckReport,
    CheckResult,
    check_results,
    register_check,
    registry,
    run_checks,
)
from .context import JobScope, allow_writes, current_job, job_writes
from .guard import ServiceSource, SessionGuard, guard_session

__all__ = [
    "Check",
    "CheckRegistry",
    "CheckReport",
    "CheckResult",
    "ChecksOnMaintenanceEnd",
    "JobScope",
    "ServiceSource",
    "SessionGuard",
    "allow_writes",
    "check_results",
    "current_job",
    "guard_session",
    "job_writes",
    "register_check",
    "registry",
    "run_checks",
    "run_checks_when_maintenance_ends",
]
