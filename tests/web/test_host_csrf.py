"""The panel and the JSON API inside a host app with CSRF protection of its own
(Flask-WTF ``CSRFProtect``, set up before or after the maintenance extension): both keep
working, the host's own forms stay protected, and a non-JSON write to the API gets the
API's 415 JSON, not the host's 400."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify, request, session
from flask.testing import FlaskClient
from flask_wtf.csrf import CSRFProtect

from maintenance import EnhancedMaintenanceModeService
from maintenance.web import MaintenanceModeMiddleware, protects_itself
from maintenance.web.admin import MaintenanceAdmin

PANEL = "/admin/maintenance/"
SAME_ORIGIN = {"Origin": "http://localhost"}


def host_app(service: EnhancedMaintenanceModeService, csrf: str) -> Flask:
    """A host app with Flask-WTF's ``CSRFProtect`` set up ``csrf`` ("before"/"after")
    the maintenance extension and its panel."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="host-secret", TESTING=True)
    if csrf == "before":
        CSRFProtect(app)

    @app.get("/login")
    def login() -> Any:
        session["username"] = request.args["username"]
        session["role"] = request.args.get("role", "user")
        return jsonify(ok=True)

    @app.post("/notes")
    def notes() -> Any:  # one of the host's own forms
        return jsonify(saved=True)

    MaintenanceModeMiddleware(service=service).init_app(app)
    MaintenanceAdmin(app)
    if csrf == "after":
        CSRFProtect(app)
    return app


@pytest.fixture(params=["before", "after"])
def host(request: pytest.FixtureRequest, make_service: Callable[..., Any]) -> Flask:
    return host_app(make_service(kind="web").start(), request.param)


def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert client.get("/login?username=root&role=admin").status_code == 200
    return client


def panel_token(client: FlaskClient) -> str:
    page = client.get(PANEL).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def test_the_panels_forms_work_and_the_hosts_stay_protected(
    host: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    client = admin(host)
    token = panel_token(client)
    enabled = client.post(
        f"{PANEL}enable",
        data={"csrf_token": token, "reason": "host csrf", "mode": "normal", "duration": "30m"},
        headers=SAME_ORIGIN,
    )
    assert enabled.status_code in (200, 302, 303), enabled.get_data(as_text=True)[:500]
    assert operator.state.load().reason == "host csrf"
    disabled = client.post(
        f"{PANEL}disable",
        data={"csrf_token": panel_token(client), "requeue": "on"},
        headers=SAME_ORIGIN,
    )
    assert disabled.status_code in (200, 302, 303), disabled.get_data(as_text=True)[:500]
    assert not operator.state.load().is_active
    # The panel still refuses a form without its own token; the host still refuses its own.
    assert (
        client.post(f"{PANEL}enable", data={"reason": "x"}, headers=SAME_ORIGIN).status_code == 403
    )
    assert client.post("/notes", data={"text": "x"}).status_code == 400


def test_the_json_api_works_and_answers_non_json_writes_with_415_json(
    host: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    client = admin(host)
    done = client.post(
        "/api/maintenance/enable", json={"reason": "via api", "wait": 0}, headers=SAME_ORIGIN
    )
    assert done.status_code == 200, done.get_data(as_text=True)[:500]
    assert operator.state.load().reason == "via api"
    for path in ("/enable", "/disable", "/bypass-link", "/nope"):
        form = client.post(f"/api/maintenance{path}", data={"reason": "x"}, headers=SAME_ORIGIN)
        assert form.is_json, (path, form.get_data(as_text=True)[:200])
        expected = 404 if path == "/nope" else 415
        assert form.status_code == expected, path
    assert operator.state.load().reason == "via api"


def test_protects_itself_names_the_panel_and_the_api(host: Flask) -> None:
    for path, ours in (
        ("/api/maintenance/enable", True),
        (PANEL + "enable", True),
        ("/notes", False),
    ):
        with host.test_request_context(path, method="POST"):
            request.blueprints  # noqa: B018  (routing happened)
            assert protects_itself() is ours, path
