"""A Celery app whose broker is set in its own code -- another Redis database than the one
``celeryconfig`` would pick from the environment -- as a fresh app wired in from the docs
may have it: what a command cannot guess without ``CELERY_APP``.

Workers and ``CELERY_APP=tests.celery.foreign_app`` load it; its broker is
``$FOREIGN_BROKER_URL`` (everything else, the hooks included, from ``celeryconfig``).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from .app import register_tasks


def make_foreign_app(broker_url: str, config: dict[str, Any] | None = None) -> Celery:
    """The test tasks on an app publishing to and consuming from ``broker_url``; its other
    settings from ``celeryconfig`` (workers) or from ``config`` (the test's publisher)."""
    if config is None:
        app = Celery("maintenance_tests_foreign")
        app.config_from_object("celeryconfig", force=True)
    else:
        app = Celery("maintenance_tests_foreign_publisher", set_as_current=False)
        app.conf.update(config)
    app.conf.broker_url = broker_url
    app.conf.result_backend = broker_url
    register_tasks(app)
    return app


app = (
    make_foreign_app(os.environ["FOREIGN_BROKER_URL"])
    if "FOREIGN_BROKER_URL" in os.environ
    else None
)
