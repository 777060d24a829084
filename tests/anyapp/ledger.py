"""A second app under maintenance control, sharing nothing with the captioner: a small
ledger with its own operation types, messages, routes and tasks.

Configured in code from a few environment variables (broker, control-plane Redis and
database, key prefixes): the Celery side calls only ``signals.install`` -- no
``celeryconfig`` -- and sets the Celery settings the docs ask for itself (leaving
``task_acks_late`` out when ``LEDGER_ACKS_LATE=0``, to show the worker's warning).
Workers load it with ``celery -A tests.anyapp.ledger worker`` and ``LEDGER_WORKER=1``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import redis
from celery import Celery
from flask import Blueprint, Flask, jsonify

import signals
from maintenance import EnhancedMaintenanceModeService, Settings
from maintenance.web import MaintenanceModeMiddleware, maintenance_exempt
from maintenance.web.admin import MaintenanceAdmin

#: The ledger's own vocabulary (the seed's caption/job/platform kinds do not exist here).
OPERATIONS: list[dict[str, Any]] = [
    {
        "name": "ledger_posting",
        "label": "Ledger postings",
        "title": "Postings are on hold",
        "message": "New ledger postings are on hold during maintenance; "
        "entries posted before it began are safe.",
    },
    {
        "name": "report_export",
        "label": "Report exports",
        "title": "Report exports are paused",
        "message": "Report exports are paused while the ledger is upgraded; "
        "saved reports stay readable.",
    },
    {
        "name": "statement_run",
        "label": "Statement runs",
        "message": "Statement runs wait for the end of an emergency.",
        "blocked_in": ["emergency"],
    },
]

#: Which routes and tasks are which kind (tasks also say it with ``operation_type=``).
RULES: list[dict[str, Any]] = [
    {"operation": "ledger_posting", "blueprint": "ledger"},
    {"operation": "report_export", "path": "/reports/*/export", "methods": ["POST"]},
]

#: Peers and paths let through maintenance like an administrator.
ALLOWED_IPS = ["10.20.0.0/16", "127.0.0.3"]
TRUSTED_PROXIES = ["127.0.0.2"]
ALLOWED_PATHS = ["/hooks/*"]


def settings(env: Mapping[str, str]) -> Settings:
    """The control plane's settings: the environment's, with the ledger's vocabulary."""
    return Settings.from_env(env, operations=OPERATIONS, rules=tuple(RULES))


def runs(env: Mapping[str, str], task: str) -> int:
    """How many times ``task`` ran (counted beside the broker)."""
    client = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    return int(client.get(f"{env['LEDGER_PREFIX']}:runs:{task}") or 0)


def make_celery(
    env: Mapping[str, str], service: EnhancedMaintenanceModeService | None = None
) -> Celery:
    """The ledger's Celery app with the maintenance hooks (``service`` None: one built
    per process from ``settings(env)``)."""
    app = Celery("ledger", set_as_current=False)
    conf: dict[str, Any] = {
        "broker_url": env["CELERY_BROKER_URL"],
        "broker_transport_options": {"global_keyprefix": env["LEDGER_BROKER_PREFIX"]},
        "task_default_queue": env["LEDGER_QUEUE"],
        "task_ignore_result": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
    }
    if env.get("LEDGER_ACKS_LATE", "1") != "0":
        conf["task_acks_late"] = True
    app.conf.update(conf)
    counter = f"{env['LEDGER_PREFIX']}:runs"

    def count(name: str) -> None:
        redis.Redis.from_url(env["CELERY_BROKER_URL"]).incr(f"{counter}:{name}")

    @app.task(name="ledger.post_entry", operation_type="ledger_posting", shared=False)
    def post_entry(amount: int) -> None:
        count("ledger.post_entry")

    @app.task(name="ledger.export_report", operation_type="report_export", shared=False)
    def export_report(report_id: str) -> None:
        count("ledger.export_report")

    signals.install(app, service, settings=None if service is not None else settings(env))
    return app


def create_app(service: EnhancedMaintenanceModeService, celery: Celery, **config: Any) -> Flask:
    """The ledger's web app (``config``: more ``app.config`` keys)."""
    app = Flask("ledger")
    app.config.update(
        SECRET_KEY="ledger-test-secret",
        MAINTENANCE_SERVICE=service,
        MAINTENANCE_ALLOWED_IPS=ALLOWED_IPS,
        MAINTENANCE_TRUSTED_PROXIES=TRUSTED_PROXIES,
        MAINTENANCE_ALLOWED_PATHS=ALLOWED_PATHS,
        **config,
    )
    ledger = Blueprint("ledger", __name__)

    @ledger.post("/entries")
    def post_entry() -> Any:
        celery.tasks["ledger.post_entry"].delay(10)
        return jsonify(queued=True), 202

    @app.get("/down")
    def down() -> Any:
        return "We are down for maintenance; back soon."

    @app.get("/reports/<report_id>")
    def show_report(report_id: str) -> Any:
        return jsonify(report=report_id)

    @app.post("/reports/<report_id>/export")
    def export_report(report_id: str) -> Any:
        celery.tasks["ledger.export_report"].delay(report_id)
        return jsonify(queued=True), 202

    @app.get("/reports/<report_id>/refresh")
    def refresh_report(report_id: str) -> Any:
        # A GET that enqueues: a read to the classifier, refused by the publish gate.
        celery.tasks["ledger.export_report"].delay(report_id)
        return jsonify(queued=True), 202

    @app.post("/hooks/payments")
    def payment_hook() -> Any:
        celery.tasks["ledger.post_entry"].delay(99)
        return jsonify(accepted=True)

    @app.post("/internal/reconcile")
    @maintenance_exempt
    def reconcile() -> Any:
        return jsonify(reconciled=True)

    app.register_blueprint(ledger, url_prefix="/ledger")
    app.extensions["celery"] = celery  # Flask's Celery pattern; `maintenance routes` reads it
    MaintenanceModeMiddleware(app, service)
    MaintenanceAdmin(app)
    return app


#: What ``celery -A tests.anyapp.ledger worker`` runs.
celery = make_celery(os.environ) if os.environ.get("LEDGER_WORKER") else None
