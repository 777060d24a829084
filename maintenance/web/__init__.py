"""The Flask side: request gate, who is asking, 503 responses, bypass cookie, sessions,
the public and admin APIs, live stream, metrics and the admin panel. The only part of
``maintenance`` that imports Flask."""

from .allowlist import maintenance_exempt
from .api import ControlAPI, MaintenanceStatusAPI
from .api.openapi import build_openapi
from .banner import banner_html, maintenance_banner, maintenance_status
from .host_csrf import protects_itself
from .identity import WebIdentity
from .middleware import MaintenanceModeMiddleware, register_web_node
from .responses import OPERATION_TITLES, build_response, operation_message
from .session_manager import MaintenanceSessionManager
from .state import WebState

__all__ = [
    "OPERATION_TITLES",
    "ControlAPI",
    "MaintenanceModeMiddleware",
    "MaintenanceSessionManager",
    "MaintenanceStatusAPI",
    "WebIdentity",
    "WebState",
    "banner_html",
    "build_openapi",
    "build_response",
    "maintenance_banner",
    "maintenance_exempt",
    "maintenance_status",
    "operation_message",
    "protects_itself",
    "register_web_node",
]
