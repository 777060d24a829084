"""Worker-side operations: active-job registry, deferral and requeue, drain, beat checks, CLI.

The Celery hooks that drive these live in the ``signals`` package;
``signals.install(app)`` wires everything.
"""

from .drain import announce_if_drained, blocked_jobs_running, wait_for_drain
from .registry import ActiveJob, JobRegistry
from .requeue import RequeueReport, requeue_jobs

__all__ = [
    "ActiveJob",
    "JobRegistry",
    "RequeueReport",
    "announce_if_drained",
    "blocked_jobs_running",
    "requeue_jobs",
    "wait_for_drain",
]
