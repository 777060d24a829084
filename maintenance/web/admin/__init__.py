"""The admin panel: maintenance controls, a live monitoring dashboard, history and reports,
as a Flask blueprint mounted next to ``MaintenanceModeMiddleware``."""

from .checks import Finding, run_checks
from .extension import BLUEPRINT, MaintenanceAdmin

__all__ = ["BLUEPRINT", "Finding", "MaintenanceAdmin", "run_checks"]
