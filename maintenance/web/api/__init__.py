"""The HTTP API under ``MAINTENANCE_API_PREFIX``: the public read API (``public``) and the
administrators' controls (``control``), two blueprints nested in ``maintenance_api``
(``mount``), with their JSON bodies stated once (``bodies``)."""

from .control import ControlAPI
from .mount import api_blueprint
from .public import MaintenanceStatusAPI

__all__ = ["ControlAPI", "MaintenanceStatusAPI", "api_blueprint"]
