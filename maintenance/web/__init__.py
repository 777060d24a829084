"""The Flask side: request gate, 503 responses, bypass cookie, sessions, status API,
live stream and metrics. The only part of ``maintenance`` that imports Flask."""

from .api import MaintenanceStatusAPI
from .banner import banner_html, maintenance_banner, maintenance_status
from .identity import WebIdentity
from .middleware import MaintenanceModeMiddleware
from .openapi import build_openapi
from .responses import OPERATION_TITLES, build_response, operation_message
from .session_manager import MaintenanceSessionManager

__all__ = [
    "OPERATION_TITLES",
    "MaintenanceModeMiddleware",
    "MaintenanceSessionManager",
    "MaintenanceStatusAPI",
    "WebIdentity",
    "banner_html",
    "build_openapi",
    "build_response",
    "maintenance_banner",
    "maintenance_status",
    "operation_message",
]
