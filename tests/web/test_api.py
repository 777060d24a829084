"""The status API: public vs admin views, messages, admin controls with validation and
CSRF protection, history, sessions and bypass links."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maintenance import EnhancedMaintenanceModeService
from tests.web.test_gate import enable

API = "/api/maintenance"
SAME_ORIGIN = {"Origin": "http://localhost"}


def post(client: FlaskClient, path: str, body: Any, **headers: str) -> Any:
    return client.post(f"{API}{path}", json=body, headers={**SAME_ORIGIN, **headers})


def test_users_see_only_what_they_need(
    app: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, reason="upgrade", duration="20m")
    response = app.test_client().get(f"{API}/status")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["view"] == "public"
    assert body["is_active"] is True
    assert body["mode"] == "normal"
    assert body["reason"] == "upgrade"
    assert 1100 < body["retry_after"] <= 1200
    assert "caption_generation" in body["blocked_operations"]
    assert body["version"] == operator.status.version
    text = response.get_data(as_text=True)
    for secret in ("ops", "enabled_by", "activation_id", "node", "degraded_reason", "@"):
        assert secret not in text, secret


def test_admins_get_the_full_view(
    admin_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator)
    body = admin_client.get(f"{API}/status").get_json()
    assert body["view"] == "admin"
    assert body["enabled_by"] == "ops"
    assert body["activation_id"] == operator.status.activation_id
    assert any(node["kind"] == "web" for node in body["nodes"])
    assert "active_jobs_count" in body


def test_inactive_status_is_plain(app: Flask) -> None:
    body = app.test_client().get(f"{API}/status").get_json()
    assert body["is_active"] is False
    assert body["mode"] is None
    assert body["blocked_operations"] == []
    assert body["message"] == "The service is operating normally."


def test_blocked_operations_lists_types_with_messages_and_admin_statistics(
    user_client: FlaskClient,
    admin_client: FlaskClient,
    app: Flask,
    operator: EnhancedMaintenanceModeService,
    web_service: EnhancedMaintenanceModeService,
) -> None:
    enable(operator, blocked_operations=["caption_generation", "batch_operations"])
    assert user_client.post("/captions/generate").status_code == 503
    public = app.test_client().get(f"{API}/blocked-operations").get_json()
    assert [o["operation"] for o in public["blocked_operations"]] == [
        "caption_generation",
        "batch_operations",
    ]
    assert "Caption generation is paused" in public["blocked_operations"][0]["message"]
    assert "attempts" not in public
    assert web_service.attempts.flush()
    admin = admin_client.get(f"{API}/blocked-operations").get_json()
    assert admin["attempts"] == {"caption_generation": 1}
    assert admin["rates_per_minute"]["caption_generation"][-1] == 1
    assert admin["recent"][0]["user"] == "alice"


def test_message_per_operation_and_bad_operations(
    app: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    client = app.test_client()
    enable(operator, reason="storage move")
    body = client.get(f"{API}/message", query_string={"operation": "image_processing"}).get_json()
    assert body["blocked"] is True
    assert "Image upload" in body["message"]
    assert "storage move" in body["message"]
    general = client.get(f"{API}/message").get_json()
    assert general["operation"] is None
    assert general["blocked"] is False
    reads = client.get(f"{API}/message?operation=read_operations").get_json()
    assert reads["blocked"] is False
    bad = client.get(f"{API}/message?operation=teleport")
    assert bad.status_code == 400
    assert bad.get_json() == {
        "error": "validation_error",
        "message": "unknown operation type 'teleport' (known: "
        + ", ".join(operator.operations.names())
        + ")",
        "field": "operation",
    }


def test_admins_enable_with_mode_duration_and_override_then_disable(
    admin_client: FlaskClient, user_client: FlaskClient, web_service: EnhancedMaintenanceModeService
) -> None:
    response = post(
        admin_client,
        "/enable",
        {
            "reason": "schema migration",
            "duration": "15m",
            "mode": "normal",
            "blocked_operations": ["job_creation"],
            "wait": 5,
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    result = response.get_json()
    assert result["fenced"] is True
    assert result["status"]["enabled_by"] == "root"
    assert result["status"]["blocked_operations"] == ["job_creation"]
    assert result["status"]["estimated_duration"] == 900
    assert result["sessions"]["count"] >= 1  # alice's session was invalidated
    assert web_service.status.is_active
    assert user_client.get("/me").get_json()["username"] is None

    response = post(admin_client, "/disable", {"requeue": False, "reason": "done", "wait": 5})
    assert response.status_code == 200
    assert response.get_json()["status"]["is_active"] is False
    event = web_service.history(1, kinds=("maintenance_disabled",))[0]
    assert (event.actor, event.reason, event.details["requeue"]) == ("root", "done", False)
    again = post(admin_client, "/disable", {})
    assert again.status_code == 409
    assert again.get_json()["error"] == "conflict"


def test_enable_in_test_mode_keeps_sessions(
    admin_client: FlaskClient, user_client: FlaskClient
) -> None:
    response = post(admin_client, "/enable", {"reason": "rehearsal", "mode": "test"})
    assert response.status_code == 200
    assert response.get_json()["sessions"] is None
    assert user_client.get("/me").get_json()["username"] == "alice"


def test_a_stale_expected_version_is_a_conflict(
    admin_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator)
    stale = operator.status.version - 1
    response = post(admin_client, "/enable", {"reason": "x", "expected_version": stale})
    assert response.status_code == 409
    assert response.get_json()["current_version"] == operator.status.version


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": "x", "mode": "NORMAL"}, "mode"),
        ({"reason": "x", "mode": "panic"}, "mode"),
        ({"reason": "x", "duration": "8d"}, "duration"),
        ({"reason": "x", "duration": "1h30m"}, "duration"),
        ({"reason": "x", "duration": 0}, "duration"),
        ({"reason": "x", "duration": 1.5}, "duration"),
        ({"reason": "x", "blocked_operations": ["status_check"]}, "blocked_operations"),
        ({"reason": "x", "blocked_operations": ["nope"]}, "blocked_operations"),
        ({"reason": "x", "wait": 31}, "wait"),
        ({"reason": "x", "wait": True}, "wait"),
        ({"reason": "x", "expected_version": -1}, "expected_version"),
        ({"reason": "x", "surprise": 1}, "surprise"),
        ({"reason": 5}, "reason"),
    ],
)
def test_enable_validates_its_body(
    admin_client: FlaskClient, web_service: EnhancedMaintenanceModeService, body: Any, field: str
) -> None:
    response = post(admin_client, "/enable", body)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()
    assert error["error"] == "validation_error"
    assert error["field"] == field
    assert error["message"]
    assert not web_service.state.load().is_active


def test_malformed_bodies_and_content_types(admin_client: FlaskClient) -> None:
    bad_json = admin_client.post(
        f"{API}/enable", data="{", content_type="application/json", headers=SAME_ORIGIN
    )
    assert bad_json.status_code == 400
    assert bad_json.get_json()["message"] == "the body is not valid JSON"
    array = admin_client.post(f"{API}/enable", json=["x"], headers=SAME_ORIGIN)
    assert array.status_code == 400
    form = admin_client.post(f"{API}/enable", data={"reason": "x"}, headers=SAME_ORIGIN)
    assert form.status_code == 415
    assert form.get_json()["error"] == "unsupported_media_type"


def test_admin_endpoints_need_an_admin(app: Flask, user_client: FlaskClient) -> None:
    anonymous = app.test_client()
    assert post(anonymous, "/enable", {"reason": "x"}).status_code == 401
    assert post(user_client, "/enable", {"reason": "x"}).status_code == 403
    assert post(user_client, "/disable", {}).status_code == 403
    assert anonymous.get(f"{API}/history").status_code == 401
    assert user_client.get(f"{API}/history").get_json()["error"] == "forbidden"
    assert user_client.get(f"{API}/sessions").status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_site_requests_are_refused(
    admin_client: FlaskClient, web_service: EnhancedMaintenanceModeService, headers: dict[str, str]
) -> None:
    response = admin_client.post(f"{API}/enable", json={"reason": "csrf"}, headers=headers)
    assert response.status_code == 403
    assert response.get_json()["error"] == "csrf"
    assert not web_service.state.load().is_active


def test_scripts_without_browser_headers_and_trusted_origins_are_accepted(
    make_app, web_service: EnhancedMaintenanceModeService
) -> None:  # type: ignore[no-untyped-def]
    from tests.web.conftest import login

    app = make_app(MAINTENANCE_TRUSTED_ORIGINS=["https://admin.example"])
    admin = login(app.test_client(), "root", "admin")
    trusted = admin.post(
        f"{API}/enable", json={"reason": "t"}, headers={"Origin": "https://admin.example"}
    )
    assert trusted.status_code == 200
    script = admin.post(f"{API}/disable", json={})
    assert script.status_code == 200


def test_history_lists_events_with_filters(
    admin_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, reason="first")
    operator.disable_maintenance("ops", wait=5)
    kinds = "kind=maintenance_enabled&kind=maintenance_disabled"
    events = admin_client.get(f"{API}/history?limit=2&{kinds}").get_json()["events"]
    assert [e["kind"] for e in events] == ["maintenance_disabled", "maintenance_enabled"]
    assert events[1]["actor"] == "ops"
    assert events[1]["reason"] == "first"
    only = admin_client.get(f"{API}/history?kind=maintenance_enabled").get_json()["events"]
    assert {e["kind"] for e in only} == {"maintenance_enabled"}
    older = admin_client.get(f"{API}/history?before_id={events[0]['id']}&{kinds}").get_json()[
        "events"
    ]
    assert older[0]["id"] == events[1]["id"]
    for bad in ("limit=0", "limit=1001", "limit=abc", "before_id=-1"):
        response = admin_client.get(f"{API}/history?{bad}")
        assert response.status_code == 400, bad


def test_sessions_login_block_and_bypass_link_endpoints(
    admin_client: FlaskClient, user_client: FlaskClient, app: Flask
) -> None:
    active = admin_client.get(f"{API}/sessions").get_json()
    assert active["count"] == 1
    assert active["sample"][0]["user"] == "alice"
    blocked = post(admin_client, "/login-block", {"blocked": True})
    assert blocked.get_json()["login_blocked"] is True
    assert app.test_client().post("/login", json={"username": "bob"}).status_code == 503
    assert post(admin_client, "/login-block", {}).status_code == 400
    assert post(admin_client, "/login-block", {"blocked": False}).status_code == 200
    invalidated = post(admin_client, "/sessions/invalidate", {"reason": "security"})
    assert invalidated.get_json()["count"] == 1
    assert user_client.get("/me").get_json()["username"] is None
    link = post(admin_client, "/bypass-link", {"ttl": 600}).get_json()
    assert link["url"].startswith("http://localhost/_maintenance/bypass/")
    assert link["expires_in"] == 600
    assert post(admin_client, "/bypass-link", {"ttl": 5}).status_code == 400


def test_the_openapi_document_describes_every_route(app: Flask) -> None:
    doc = app.test_client().get(f"{API}/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    routes = {
        rule.rule.removeprefix(API)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("maintenance_api.")
        and not rule.endpoint.startswith("maintenance_api.unknown")  # the JSON 404/405
    }
    assert routes == set(doc["paths"])


def test_unknown_paths_and_wrong_methods_answer_in_json(app: Flask) -> None:
    """Every error under the API prefix is JSON, also Flask's routing ones."""
    client = app.test_client()
    missing = client.get("/api/maintenance/nope")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    wrong = client.delete("/api/maintenance/status")
    assert wrong.status_code == 405 and wrong.get_json()["error"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "GET"
    both = client.put("/api/maintenance/emergency")
    assert both.status_code == 405 and both.headers["Allow"] == "GET, POST"
    assert client.get("/api/maintenance/status").status_code == 200  # real routes win
    assert client.get("/no/such/page").content_type.startswith("text/html")  # the app's own
