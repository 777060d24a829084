"""The captioner's blueprints, one per area; endpoint names follow the maintenance
classifier's default rules (``maintenance.classifier.DEFAULT_RULES``)."""

from __future__ import annotations

from flask import Flask

from . import account, admin, auth, captions, images, jobs, main, platforms, review

BLUEPRINTS = (main, auth, captions, jobs, platforms, review, account, images, admin)


def register_blueprints(app: Flask) -> None:
    """Register every area's blueprint on ``app``."""
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)
