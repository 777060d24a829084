"""The small app the admin panel is tested in: the middleware, the JSON API and the panel,
a plain session-role login, one user-work route and a waitress server on loopback."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request, session

from maintenance import EnhancedMaintenanceModeService
from maintenance.web import MaintenanceModeMiddleware
from maintenance.web.admin import MaintenanceAdmin
from tests import services

PANEL = "/admin/maintenance/"


def build_app(service: EnhancedMaintenanceModeService, **config: Any) -> Flask:
    """Panel under ``/admin/maintenance``; ``/login?username=&role=`` logs in (role in session)."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="admin-ui-tests-secret")
    app.config.update(config)
    ext = MaintenanceModeMiddleware(service=service)

    @app.get("/login")
    def login() -> Any:
        user = {"username": request.args["username"], "role": request.args.get("role", "user")}
        refused = ext.sessions.check_login(user)  # type: ignore[union-attr]
        if refused is not None:
            return refused
        session["username"] = user["username"]
        session["role"] = user["role"]
        return jsonify(logged_in=user["username"])

    @app.get("/me")
    def me() -> Any:
        return jsonify(username=session.get("username"), role=session.get("role"))

    @app.post("/captions/generate")
    def start_caption_generation() -> Any:
        return jsonify(started=True)

    ext.init_app(app)
    MaintenanceAdmin(app)
    return app


class LiveServer(services.LiveServer):
    """waitress on a free loopback port, serving from threads of this process."""

    def __init__(self, app: Flask, threads: int = 12, name: str = "admin-ui-server") -> None:
        super().__init__(app, threads=threads, name=name)
