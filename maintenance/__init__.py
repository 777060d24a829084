"""Maintenance-mode control plane for Flask + Celery fleets.

The core is framework-agnostic: Flask lives in ``maintenance.web``, Celery in
the top-level ``signals`` and ``workers`` packages.
"""

from .domain.classifier import MaintenanceOperationClassifier, Rule
from .domain.modes import MaintenanceMode, OperationType
from .domain.policy import Decision
from .domain.status import MaintenanceStatus
from .errors import (
    ConflictError,
    MaintenanceError,
    NotAuthorized,
    NotFound,
    OperationBlocked,
    StoreMismatch,
    StoreUnavailable,
    ValidationError,
)
from .factory import build_service, default_service, set_default_service
from .fencing import ActivationResult
from .roles import RoleResolver
from .service import EnhancedMaintenanceModeService
from .settings import Settings

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
    "StoreMismatch",
    "StoreUnavailable",
    "ValidationError",
    "build_service",
    "default_service",
    "set_default_service",
]
