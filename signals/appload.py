"""Find the Celery app a command should publish with, the maintenance hooks installed."""

from __future__ import annotations

import os
from typing import Any

from maintenance import EnhancedMaintenanceModeService

from .install import install


def load_app(spec: str | None = None, service: EnhancedMaintenanceModeService | None = None) -> Any:
    """The app named by ``spec`` (``module`` or ``module:attr``), else ``$CELERY_APP``,
    else a bare app configured from ``celeryconfig`` -- enough to publish by name.
    """
    from celery import Celery
    from celery.app.utils import find_app

    spec = spec or os.environ.get("CELERY_APP")
    if spec:
        app = find_app(spec)
    else:
        app = Celery("maintenance", set_as_current=False)
        app.config_from_object("celeryconfig")
    install(app, service)
    return app
