"""The admin panel: maintenance controls, a live monitoring dashboard, history and reports,
as a Flask blueprint mounted next to ``MaintenanceModeMiddleware``."""

from .extension import BLUEPRINT, MaintenanceAdmin
from .preflight import Finding, run_checks

__all__ = ["BLUEPRINT", "Finding", "MaintenanceAdmin", "run_checks"]
