"""Maintenance-mode control plane for Flask + Celery fleets.

The core is framework-agnostic: Flask lives in ``maintenance.web``, Celery in
the top-level ``signals`` and ``workers`` packages.
"""

from .classifier import MaintenanceOperationClassifier, Rule
from .errors import (
    ConflictError,
    MaintenanceError,
    NotFound,
    OperationBlocked,
    StoreUnavailable,
    ValidationError,
)
from .factory import build_service, default_service, set_default_service
from .fencing import ActivationResult
from .identity import NotAuthorized, RoleResolver
from .modes import MaintenanceMode, OperationType
from .policy import Decision
from .service import EnhancedMaintenanceModeService
from .settings import Settings
from .status import MaintenanceStatus

__all__ = [
    "ActivationResult",
    "ConflictError",
    "Decision",
    "EnhancedMaintenanceModeService",
    "MaintenanceError",
    "MaintenanceMode",
    "MaintenanceOperationClassifier",
    "MaintenanceStatus",
    "NotAuthorized",
    "NotFound",
    "OperationBlocked",
    "OperationType",
    "RoleResolver",
    "Rule",
    "Settings",
    "StoreUnavailable",
    "ValidationError",
    "build_service",
    "default_service",
    "set_default_service",
]
