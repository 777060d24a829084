"""503 responses: JSON or HTML by Accept, headers, per-operation messages, and the banner."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maintenance import EnhancedMaintenanceModeService
from tests.web.conftest import login
from tests.web.test_gate import enable


def test_json_clients_get_a_json_body_with_reason_mode_and_expected_end(
    user_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, reason="moving to a new database", duration="45m")
    response = user_client.post("/captions/generate", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == "maintenance"
    assert body["operation"] == "caption_generation"
    assert body["reason"] == "moving to a new database"
    assert body["mode"] == "normal"
    assert body["estimated_completion"] == operator.status.estimated_completion.isoformat()
    assert 2600 < body["retry_after"] <= 2700
    assert "Caption generation is paused" in body["message"]
    assert "moving to a new database" in body["message"]
    assert body["status_url"] == "/api/maintenance/status"


def test_browsers_get_a_styled_html_page(
    user_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, reason="moving <b>servers</b>")
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = user_client.post("/images/upload", headers={"Accept": accept})
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<title>Image processing is paused" in html
    assert "Scheduled maintenance" in html
    assert "moving &lt;b&gt;servers&lt;/b&gt;" in html  # the reason is escaped
    assert "<style>" in html
    assert '"/api/maintenance/status"' in html  # it polls the status, reloads when it ends
    assert "EventSource" not in html  # and holds no stream open


@pytest.mark.parametrize(
    ("accept", "path", "json"),
    [
        ("application/json", "/jobs", True),
        ("text/html", "/jobs", False),
        ("*/*", "/jobs", False),
        ("text/html;q=0.5, application/json", "/jobs", True),
    ],
)
def test_negotiation_follows_accept(
    user_client: FlaskClient,
    operator: EnhancedMaintenanceModeService,
    accept: str,
    path: str,
    json: bool,
) -> None:
    enable(operator)
    response = user_client.post(path, headers={"Accept": accept})
    assert response.status_code == 503
    assert (response.mimetype == "application/json") is json


def test_ties_go_to_json_for_json_bodies_and_xhr(
    user_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator)
    assert user_client.post("/jobs", json={"a": 1}).mimetype == "application/json"
    xhr = user_client.post("/jobs", headers={"X-Requested-With": "XMLHttpRequest"})
    assert xhr.mimetype == "application/json"


def test_headers_retry_after_and_no_store(
    user_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, duration="10m")
    response = user_client.post("/jobs")
    assert response.headers["Cache-Control"] == "no-store"
    assert 590 <= int(response.headers["Retry-After"]) <= 600
    assert response.headers["X-Maintenance-Mode"] == "normal"
    assert "Accept" in response.headers["Vary"]


def test_retry_after_is_omitted_when_the_end_is_unknown(
    user_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, duration=None)
    response = user_client.post("/jobs", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert "Retry-After" not in response.headers
    assert response.get_json()["retry_after"] is None
    assert response.get_json()["estimated_completion"] is None


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/captions/generate", "Caption generation is paused"),
        ("/jobs", "New jobs cannot be created"),
        ("/platform/switch", "Platform switching, connection tests and credential updates"),
        ("/review/batch", "Batch processing and bulk review are paused"),
        ("/password", "Profile, settings and password changes are unavailable"),
        ("/images/upload", "Image upload, optimisation and analysis are paused"),
    ],
)
def test_each_operation_type_has_its_own_message(
    user_client: FlaskClient, operator: EnhancedMaintenanceModeService, path: str, fragment: str
) -> None:
    enable(operator)
    body = user_client.post(path, headers={"Accept": "application/json"}).get_json()
    assert fragment in body["message"]


def test_emergency_pages_say_so(
    user_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, mode="emergency", reason="security incident")
    body = user_client.get("/dashboard", headers={"Accept": "application/json"}).get_json()
    assert body["mode"] == "emergency"
    assert "emergency maintenance" in body["message"]


def test_apps_can_override_message_templates(make_app, operator) -> None:  # type: ignore[no-untyped-def]
    app: Flask = make_app(
        MAINTENANCE_MESSAGES={
            "job_creation": "No new jobs until {until} ({reason}).",
            "default": "Down for {mode} maintenance.",
        }
    )
    client = login(app.test_client(), "alice")
    enable(operator, reason="disk swap", duration=None)
    jobs = client.post("/jobs", headers={"Accept": "application/json"}).get_json()
    assert jobs["message"] == "No new jobs until as soon as possible (disk swap)."
    notes = app.test_client().post("/notes", headers={"Accept": "application/json"})
    assert notes.get_json()["message"] == "Down for normal maintenance."


def test_the_banner_shows_on_available_pages_and_disappears_afterwards(
    user_client: FlaskClient, admin_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    assert "maintenance-banner" not in user_client.get("/dashboard").get_data(as_text=True)
    enable(operator, reason="index rebuild")
    page = user_client.get("/dashboard").get_data(as_text=True)
    assert "maintenance-banner" in page
    assert "index rebuild" in page
    admin_page = admin_client.get("/dashboard").get_data(as_text=True)
    assert "You are an administrator" in admin_page
    operator.disable_maintenance("ops", wait=5)
    assert "maintenance-banner" not in user_client.get("/dashboard").get_data(as_text=True)


def test_the_banner_is_silent_for_users_during_a_rehearsal(
    user_client: FlaskClient, admin_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, mode="test")
    assert "maintenance-banner" not in user_client.get("/dashboard").get_data(as_text=True)
    assert "rehearsal" in admin_client.get("/dashboard").get_data(as_text=True)
