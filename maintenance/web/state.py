"""What ``MaintenanceModeMiddleware.init_app`` keeps for one app, in
``app.extensions["maintenance"]``: the service it talks to, the app's settings, its
identity rules, session manager, API and metrics. One extension set up on two apps
keeps two of these, so neither app sees the other's configuration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService
    from .allowlist import AllowlistCounter
    from .api import ControlAPI, MaintenanceStatusAPI
    from .config import WebConfig
    from .identity import IdentityResolver, WebIdentity
    from .metrics import WebMetrics
    from .middleware import MaintenanceModeMiddleware
    from .session_manager import MaintenanceSessionManager

#: The key of the state in ``app.extensions``.
KEY = "maintenance"


@dataclass
class WebState:
    """One app's maintenance wiring (``app.extensions["maintenance"]``)."""

    extension: MaintenanceModeMiddleware
    service: EnhancedMaintenanceModeService
    config: WebConfig
    identities: IdentityResolver
    sessions: MaintenanceSessionManager | None = None
    api: MaintenanceStatusAPI | None = None
    control: ControlAPI | None = None
    metrics: WebMetrics | None = None
    allowlisted: AllowlistCounter | None = None

    def identity(self) -> WebIdentity:
        """The current request's identity, by this app's rules."""
        return self.identities.identity()


def state_of(app: Flask) -> WebState:
    """``app``'s state (``RuntimeError`` when the extension was not set up on it)."""
    state = app.extensions.get(KEY)
    if not isinstance(state, WebState):
        raise RuntimeError("MaintenanceModeMiddleware.init_app(app) has not been called")
    return state
