"""A reference Flask + Celery captioning app wired for maintenance mode (``create_app``).

See ``docs/captioner.md``: what it shows and how it uses the library.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask, has_request_context

from maintenance.integrity import run_checks_when_maintenance_ends

from .auth import cached_user, check_csrf, csrf_token, current_user
from .checks import register_checks
from .db import CaptionerDatabase, database_url
from .extension import CaptionerExtension
from .integration import install_celery_hooks, install_web
from .models import User

__all__ = ["CaptionerExtension", "create_app"]


def _defaults() -> dict[str, Any]:
    env = os.environ
    return {
        # Several web processes must share one key; the demo sets it for all of them.
        "SECRET_KEY": env.get("CAPTIONER_SECRET_KEY") or secrets.token_hex(32),
        "MAX_CONTENT_LENGTH": 8 * 1024 * 1024,
        "CAPTIONER_DATABASE_URL": None,
        "CAPTIONER_CREATE_SCHEMA": True,
        # Seconds of simulated model/API latency per task step (the demo makes jobs last).
        "CAPTIONER_TASK_DURATION": float(env.get("CAPTIONER_TASK_DURATION") or 0),
    }


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the captioner.

    ``config`` may set, besides Flask's own keys and every ``MAINTENANCE_*`` key
    of ``MaintenanceModeMiddleware``: ``CAPTIONER_DATABASE`` (a built
    ``CaptionerDatabase``) or ``CAPTIONER_DATABASE_URL``; ``CAPTIONER_CELERY``
    (the Celery app to publish with; default ``maintenance_demo.captioner.tasks.celery_app``);
    ``CAPTIONER_CREATE_SCHEMA``; ``CAPTIONER_TASK_DURATION``; ``CAPTIONER_CSRF``.
    """
    app = Flask(__name__)
    app.config.update(_defaults())
    app.config.update(config or {})
    db: CaptionerDatabase = app.config.get("CAPTIONER_DATABASE") or CaptionerDatabase(
        app.config["CAPTIONER_DATABASE_URL"] or database_url()
    )
    if app.config["CAPTIONER_CREATE_SCHEMA"]:
        db.create_schema()
    maintenance = install_web(app, app.config.get("MAINTENANCE_SERVICE"), current_user)
    service = maintenance.service
    assert service is not None
    db.guard(service, user=_guard_user)
    celery = app.config.get("CAPTIONER_CELERY") or _default_celery()
    install_celery_hooks(celery, service)
    ext = CaptionerExtension(db=db, celery=celery, service=service, maintenance=maintenance)
    register_checks(ext.checks, service, db)
    ext.check_runner = run_checks_when_maintenance_ends(service, ext.checks)
    app.extensions["captioner"] = ext

    app.before_request(check_csrf)
    app.teardown_appcontext(ext.close_session)
    app.jinja_env.globals.update(csrf_token=csrf_token, current_user=current_user)

    # OperationBlocked raised by the Celery publish gate or the transaction guard after
    # the request itself was let through (e.g. maintenance began mid-request) gets the
    # maintenance 503 from MaintenanceModeMiddleware (MAINTENANCE_HANDLE_BLOCKED).

    from .views import register_blueprints

    register_blueprints(app)
    return app


def _guard_user() -> User | None:
    return cached_user() if has_request_context() else None


def _default_celery() -> Any:
    from .tasks import celery_app

    return celery_app
