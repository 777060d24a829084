"""The app the status API bench serves with gunicorn: MaintenanceModeMiddleware with its
status API, configured from the environment (REDIS_URL, MAINTENANCE_REDIS_PREFIX,
MAINTENANCE_DATABASE_URL)."""

from __future__ import annotations

import os

from flask import Flask

from maintenance.web import MaintenanceModeMiddleware


def create_app() -> Flask:
    app = Flask("status_bench")
    app.config.update(
        SECRET_KEY="bench",
        MAINTENANCE_SSE_HEARTBEAT=float(os.environ.get("BENCH_SSE_HEARTBEAT", "15")),
        # The bench sizes gthread's pool for its subscribers, so it lifts the stream cap
        # (a server that cannot afford it keeps the default: the rest are told to poll).
        MAINTENANCE_SSE_MAX_STREAMS=int(os.environ.get("BENCH_SSE_MAX_STREAMS", "1000")),
    )
    MaintenanceModeMiddleware(app)

    @app.get("/")
    def index() -> str:
        return "ok"

    return app
