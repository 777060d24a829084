"""Worker-side operations: active-job registry, deferral and requeue, drain, emergency
termination, beat checks, CLI.

The Celery hooks that drive these live in the ``signals`` package;
``signals.install(app)`` wires everything.
"""

from .drain import announce_if_drained, blocked_jobs_running, wait_for_drain
from .emergency import EmergencyMaintenanceHandler, TerminationResult, request_abort, should_abort
from .registry import ActiveJob, JobRegistry
from .requeue import RequeueReport, requeue_jobs

__all__ = [
    "ActiveJob",
    "EmergencyMaintenanceHandler",
    "JobRegistry",
    "RequeueReport",
    "TerminationResult",
    "announce_if_drained",
    "blocked_jobs_running",
    "request_abort",
    "requeue_jobs",
    "should_abort",
    "wait_for_drain",
]
