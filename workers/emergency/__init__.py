"""Emergency maintenance on the Celery side: each worker stops its own running jobs
(abort flag, then SIGTERM, then SIGKILL); ``CeleryFleet`` is the emergency controller's
fleet adapter and ``EmergencyMaintenanceHandler`` the controller with it. Tasks call
``should_abort()`` to stop cooperatively.
"""

from .abort import request_abort, should_abort
from .handler import CeleryFleet, EmergencyMaintenanceHandler

__all__ = ["CeleryFleet", "EmergencyMaintenanceHandler", "request_abort", "should_abort"]
