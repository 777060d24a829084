"""Emergency maintenance on the Celery side: each worker stops its own running jobs
(abort flag, then SIGTERM, then SIGKILL), and ``EmergencyMaintenanceHandler`` declares,
watches, lifts and reports. Tasks call ``should_abort()`` to stop cooperatively.
"""

from .abort import request_abort, should_abort
from .handler import EmergencyMaintenanceHandler, TerminationResult

__all__ = ["EmergencyMaintenanceHandler", "TerminationResult", "request_abort", "should_abort"]
