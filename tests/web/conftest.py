"""Fixtures for the Flask side: a small captioning-style app with one route per operation
family, logged-in test clients, an operator node to switch maintenance, a real WSGI server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, jsonify, render_template_string, request, session
from flask.testing import FlaskClient

from maintenance import EnhancedMaintenanceModeService, OperationType
from maintenance.roles import current_bypass_user
from maintenance.web import MaintenanceModeMiddleware
from tests.services import LiveServer

Op = OperationType

#: One representative route per operation family of the plan (method, path, endpoint, op).
FAMILY_ROUTES: list[tuple[str, str, str, OperationType]] = [
    ("POST", "/captions/generate", "start_caption_generation", Op.CAPTION_GENERATION),  # 3.1
    ("POST", "/captions/7/regenerate", "regenerate_caption", Op.CAPTION_GENERATION),
    ("POST", "/jobs", "create_job", Op.JOB_CREATION),  # 3.2
    ("POST", "/jobs/7/cancel", "cancel_job", Op.JOB_CREATION),
    ("POST", "/platform/switch", "switch_platform", Op.PLATFORM_OPERATIONS),  # 4.1
    ("POST", "/platform/test-connection", "test_connection", Op.PLATFORM_OPERATIONS),
    ("POST", "/platform/credentials", "update_credentials", Op.PLATFORM_OPERATIONS),
    ("POST", "/review/batch", "batch_review", Op.BATCH_OPERATIONS),  # 4.2
    ("POST", "/captions/bulk-update", "bulk_update_captions", Op.BATCH_OPERATIONS),
    ("POST", "/profile", "update_profile", Op.USER_DATA_MODIFICATION),  # 5.1
    ("POST", "/settings", "update_settings", Op.USER_DATA_MODIFICATION),
    ("POST", "/password", "change_password", Op.USER_DATA_MODIFICATION),
    ("POST", "/images/upload", "upload_image", Op.IMAGE_PROCESSING),  # 5.2
    ("POST", "/images/7/optimize", "optimize_image", Op.IMAGE_PROCESSING),
    ("POST", "/images/7/analyze", "analyze_image", Op.IMAGE_PROCESSING),
]


def build_app(service: EnhancedMaintenanceModeService, **config: Any) -> Flask:
    """The test app: family routes, a page with the banner, health, login/logout, admin."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="web-tests-secret", TESTING=True)
    app.config.update(config)
    ext = MaintenanceModeMiddleware(service=service)

    def work_view(**_kw: Any) -> Any:
        who = current_bypass_user()
        return jsonify(done=request.endpoint, bypass=getattr(who, "username", None))

    for method, path, endpoint, _op in FAMILY_ROUTES:
        rule = path.replace("/7/", "/<int:item_id>/")
        app.add_url_rule(rule, endpoint, work_view, methods=[method])

    @app.get("/dashboard")
    def dashboard() -> str:
        return render_template_string("<main>{{ maintenance_banner() }}<p>dashboard</p></main>")

    @app.get("/health")
    def health() -> Any:
        return jsonify(ok=True)

    @app.post("/notes")
    def save_note() -> Any:  # unclassified mutating request: UNKNOWN
        return jsonify(saved=True)

    @app.get("/admin")
    def admin_dashboard() -> Any:
        return jsonify(admin=True, bypass=getattr(current_bypass_user(), "username", None))

    @app.post("/login")
    def login() -> Any:
        data = request.get_json(force=True)
        user = {"username": data["username"], "role": data.get("role", "user")}
        refused = ext.sessions.check_login(user)  # type: ignore[union-attr]
        if refused is not None:
            return refused
        session["username"] = user["username"]
        session["role"] = user["role"]
        return jsonify(logged_in=user["username"])

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return jsonify(logged_out=True)

    @app.get("/me")
    def me() -> Any:
        return jsonify(username=session.get("username"), role=session.get("role"))

    ext.init_app(app)
    return app


@pytest.fixture
def web_service(make_service) -> EnhancedMaintenanceModeService:  # type: ignore[no-untyped-def]
    """The web node's service (registered, so fenced activations wait for it)."""
    return make_service(kind="web").start()


@pytest.fixture
def operator(make_service) -> EnhancedMaintenanceModeService:  # type: ignore[no-untyped-def]
    """Another process's view (like the CLI): enables/disables, fenced on the web node."""
    return make_service(kind="cli", register=False)


@pytest.fixture
def make_app(web_service: EnhancedMaintenanceModeService) -> Callable[..., Flask]:
    def factory(**config: Any) -> Flask:
        return build_app(web_service, **config)

    return factory


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


def login(client: FlaskClient, username: str, role: str = "user") -> FlaskClient:
    """Log ``client`` in through the app's login view (fails the test if refused)."""
    response = client.post("/login", json={"username": username, "role": role})
    assert response.status_code == 200, response.get_data(as_text=True)
    return client


@pytest.fixture
def user_client(app: Flask) -> FlaskClient:
    return login(app.test_client(), "alice", "user")


@pytest.fixture
def admin_client(app: Flask) -> FlaskClient:
    return login(app.test_client(), "root", "admin")


@pytest.fixture
def live_server(make_app: Callable[..., Flask]) -> Iterator[Callable[..., LiveServer]]:
    """Start the test app (with config overrides) on a real server; stopped afterwards."""
    started: list[LiveServer] = []

    def start(threads: int = 16, **config: Any) -> LiveServer:
        # Short heartbeats let open streams notice a closed server quickly.
        config.setdefault("MAINTENANCE_SSE_HEARTBEAT", 0.2)
        server = LiveServer(make_app(**config), threads=threads).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
