"""Worker-side operations: deferral and requeue, drain, emergency termination, beat checks,
and what the Celery hooks share with them (the app's binding, the task -> operation
lookup, the header names, the internal-publish context).

The hooks that drive these live in the ``signals`` package, which imports this one
(never the other way round); ``signals.install(app)`` wires everything. The
active-job registry itself is in the core (``maintenance.job_registry``).
"""

from .drain import announce_if_drained, blocked_jobs_running, wait_for_drain
from .emergency import EmergencyMaintenanceHandler, request_abort, should_abort
from .requeue import RequeueReport, requeue_jobs
from .result_link import current_id, current_result

__all__ = [
    "EmergencyMaintenanceHandler",
    "RequeueReport",
    "announce_if_drained",
    "blocked_jobs_running",
    "current_id",
    "current_result",
    "request_abort",
    "requeue_jobs",
    "should_abort",
    "wait_for_drain",
]
