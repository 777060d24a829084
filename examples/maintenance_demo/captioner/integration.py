"""How the captioner plugs in maintenance mode, through the library's public API only.

Web: ``MaintenanceModeMiddleware`` (request gate, 503 pages, banner, status API,
session manager) and ``MaintenanceAdmin`` (the admin panel). Celery:
``signals.install`` (publish gate, worker-side deferral, job tracking). Data:
``maintenance.integrity`` (transaction guard, consistency checks run when
maintenance ends).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import signals
from maintenance import EnhancedMaintenanceModeService
from maintenance.web import MaintenanceModeMiddleware
from maintenance.web.admin import MaintenanceAdmin

if TYPE_CHECKING:
    from celery import Celery
    from flask import Flask


def install_web(
    app: Flask, service: EnhancedMaintenanceModeService | None, current_user: Any
) -> MaintenanceModeMiddleware:
    """Install the Flask side and the admin panel; ``current_user`` tells it who is asking."""
    app.config.setdefault("MAINTENANCE_CURRENT_USER", current_user)
    # Anonymous visitors of the panel log in first, then come back.
    app.config.setdefault("MAINTENANCE_ADMIN_LOGIN_URL", "/login")
    middleware = MaintenanceModeMiddleware(app, service=service)
    MaintenanceAdmin(app)
    return middleware


def install_celery_hooks(celery: Celery, service: EnhancedMaintenanceModeService | None) -> None:
    """Install the Celery side (idempotent; ``service`` None: built per process kind)."""
    signals.install(celery, service)


def service_of_celery(celery: Celery) -> EnhancedMaintenanceModeService | None:
    """The service the Celery hooks of ``celery`` use, if installed."""
    binding = signals.binding_of(celery)
    return binding.service if binding is not None else None
