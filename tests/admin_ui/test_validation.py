"""Server-side validation and consistency checks of the panel (Flask test client, real
service on real Redis and SQLite): every rule answers next to its field, warnings depend
on live data, refused callers see nothing, and the panel's wiring is checked at start."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maintenance import EnhancedMaintenanceModeService, MaintenanceMode
from maintenance.nodes import NodeRegistry
from maintenance.web import MaintenanceModeMiddleware
from maintenance.web.admin import MaintenanceAdmin
from tests.admin_ui.app import PANEL, build_app


@pytest.fixture
def app(service: EnhancedMaintenanceModeService) -> Flask:
    return build_app(service)


def client_as(app: Flask, username: str, role: str) -> FlaskClient:
    client = app.test_client()
    assert client.get(f"/login?username={username}&role={role}").status_code == 200
    return client


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return client_as(app, "root", "admin")


def token(client: FlaskClient) -> str:
    page = client.get(PANEL).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def field_error(page: str, field: str) -> str:
    found = re.search(rf'id="{field}-error" role="alert">([^<]*)</p>', page)
    return html.unescape(found.group(1)) if found else ""


def post_enable(client: FlaskClient, **fields: Any) -> Any:
    data = {"csrf_token": token(client), "mode": "normal", **fields}
    return client.post(f"{PANEL}enable", data=data)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"reason": "  "}, "reason", "reason is required"),
        ({"reason": "r" * 501}, "reason", "at most 500 allowed"),
        ({"reason": "ok", "duration": "soon"}, "duration", "is not a duration"),
        ({"reason": "ok", "duration": "0s"}, "duration", "greater than zero"),
        ({"reason": "ok", "duration": "7d1s"}, "duration", "at most 7 days"),
        ({"reason": "ok", "mode": "panic"}, "mode", "unknown maintenance mode"),
        (
            {"reason": "ok", "scope": "custom", "operations": "status_check"},
            "blocked_operations",
            "can never be blocked",
        ),
        (
            {"reason": "ok", "scope": "custom", "operations": "teleport"},
            "blocked_operations",
            "unknown operation type",
        ),
        ({"reason": "ok", "scope": "everything"}, "scope", "default set or a custom set"),
        ({"reason": "ok", "mode": "emergency"}, "confirm_emergency", "type EMERGENCY"),
        (
            {"reason": "ok", "mode": "emergency", "confirm_emergency": "yes"},
            "confirm_emergency",
            "type EMERGENCY",
        ),
        ({"reason": "ok", "expected_version": "v2"}, "form", "not a number"),
    ],
)
def test_each_rule_is_enforced_on_the_server_next_to_its_field(
    admin: FlaskClient,
    service: EnhancedMaintenanceModeService,
    fields: dict[str, str],
    field: str,
    message: str,
) -> None:
    response = post_enable(admin, **fields)
    assert response.status_code == 400
    assert message in field_error(response.get_data(as_text=True), field)
    assert not service.state.load().is_active


def test_the_longest_valid_values_are_accepted(
    admin: FlaskClient, service: EnhancedMaintenanceModeService
) -> None:
    """500 characters and exactly 7 days (as ``6d24h``) pass, like in the core."""
    response = post_enable(admin, reason="r" * 500, duration="6d24h", invalidate_sessions="on")
    assert response.status_code == 303
    stored = service.state.load()
    assert stored.is_active and stored.estimated_duration == 7 * 86400


def test_the_check_endpoint_reports_errors_and_findings(admin: FlaskClient) -> None:
    """The live check answers the same rules in JSON, and the effective blocked set."""
    bad = admin.get(f"{PANEL}check", query_string={"reason": "", "duration": "9d"}).get_json()
    assert set(bad["errors"]) == {"reason", "duration"}
    good = admin.get(
        f"{PANEL}check",
        query_string={"reason": "x", "duration": "1h", "mode": "emergency"},
    ).get_json()
    assert good["errors"] == {} and good["duration_seconds"] == 3600
    assert "read_operations" in good["blocked_operations"]


def findings_for(client: FlaskClient, **args: str) -> dict[str, dict[str, Any]]:
    body = client.get(f"{PANEL}check", query_string={"reason": "x", **args}).get_json()
    assert body["errors"] == {}, body
    return {f["code"]: f for f in body["findings"]}


def test_critical_admin_only_checks_who_holds_the_role(app: Flask, admin: FlaskClient) -> None:
    """Only critical admins keep the panel in a lockdown; outside emergencies it does nothing."""
    mine = findings_for(admin, mode="emergency", critical_admin_only="on")
    assert mine["not_critical_admin"]["level"] == "warning"
    critical = client_as(app, "chief", "critical")
    assert "not_critical_admin" not in findings_for(
        critical, mode="emergency", critical_admin_only="on"
    )
    assert "critical_only_not_emergency" in findings_for(
        critical, mode="normal", critical_admin_only="on"
    )


def test_changes_to_a_running_maintenance_are_flagged(
    admin: FlaskClient, service: EnhancedMaintenanceModeService
) -> None:
    """Downgrading an emergency and switching to a rehearsal are warnings."""
    service.enable_maintenance("Breach", mode="emergency", enabled_by="ops")
    downgrade = findings_for(admin, mode="normal")
    assert downgrade["already_active"]["level"] == "info"
    assert downgrade["emergency_downgrade"]["level"] == "warning"
    assert findings_for(admin, mode="test")["unblocks_everything"]["level"] == "warning"


def test_lagging_nodes_and_sessions_to_log_out_are_reported(
    app: Flask, admin: FlaskClient, service: EnhancedMaintenanceModeService
) -> None:
    client_as(app, "alice", "user")
    registry = NodeRegistry(service.redis, service.keys)
    service.enable_maintenance("Bump", enabled_by="ops")
    registry.heartbeat("worker@slow:1:aaaaaa", 0, {"kind": "worker"})
    found = findings_for(admin, invalidate_sessions="on")
    assert "worker@slow:1:aaaaaa" in found["lagging_nodes"]["message"]
    assert found["sessions_logged_out"]["message"].startswith("1 active non-admin session")
    assert "sessions_logged_out" not in findings_for(admin)  # not asked to log anyone out


def test_a_stale_form_is_refused_with_a_conflict(
    admin: FlaskClient, service: EnhancedMaintenanceModeService
) -> None:
    """Someone else changed maintenance after the form was rendered: nothing is overwritten."""
    csrf = token(admin)
    service.enable_maintenance("Theirs", enabled_by="other-admin")
    response = admin.post(
        f"{PANEL}enable",
        data={"csrf_token": csrf, "reason": "Mine", "mode": "normal", "expected_version": "0"},
    )
    assert response.status_code == 409
    assert "changed maintenance meanwhile" in field_error(response.get_data(as_text=True), "form")
    assert service.state.load().reason == "Theirs"


def test_ending_maintenance_that_is_off_says_so(admin: FlaskClient) -> None:
    response = admin.post(
        f"{PANEL}disable", data={"csrf_token": token(admin), "requeue": "on"}, follow_redirects=True
    )
    assert "maintenance is not active" in response.get_data(as_text=True)


def test_a_note_longer_than_500_characters_is_refused(
    admin: FlaskClient, service: EnhancedMaintenanceModeService
) -> None:
    service.enable_maintenance("Upgrade", enabled_by="ops")
    response = admin.post(f"{PANEL}disable", data={"csrf_token": token(admin), "note": "n" * 501})
    assert response.status_code == 400
    assert "at most 500" in field_error(response.get_data(as_text=True), "note")
    assert service.state.load().is_active


def test_panel_responses_carry_strict_security_headers(admin: FlaskClient) -> None:
    response = admin.get(PANEL)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert "<script>" not in page  # no inline script: only the JSON data block and modules


def test_user_text_is_escaped_in_the_page(
    admin: FlaskClient, service: EnhancedMaintenanceModeService
) -> None:
    """A reason with markup is shown as text, in the page and in its JSON data block."""
    service.enable_maintenance("<img src=x onerror=alert(1)></script>", enabled_by="ops")
    page = admin.get(PANEL).get_data(as_text=True)
    assert "<img src=x" not in page
    block = re.search(r'<script type="application/json" id="admin-page">(.*?)</script>', page, re.S)
    assert block and json.loads(block.group(1))["snapshot"]["status"]["reason"].startswith("<img")


def test_anonymous_visitors_are_sent_to_the_login_page_when_one_is_configured(
    service: EnhancedMaintenanceModeService,
) -> None:
    app = build_app(service, MAINTENANCE_ADMIN_LOGIN_URL="/login")
    response = app.test_client().get(PANEL)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=%2Fadmin%2Fmaintenance%2F")


def test_the_panel_needs_the_middleware_first(service: EnhancedMaintenanceModeService) -> None:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "s"
    with pytest.raises(RuntimeError, match="MaintenanceModeMiddleware"):
        MaintenanceAdmin(app)
    MaintenanceModeMiddleware(app, service)
    MaintenanceAdmin(app, url_prefix="/ops/maintenance")
    assert any(r.rule == "/ops/maintenance/" for r in app.url_map.iter_rules())


def test_emergency_control_switches_to_a_dedicated_endpoint_when_the_api_has_one(
    service: EnhancedMaintenanceModeService,
) -> None:
    """The status API has ``POST /api/maintenance/emergency``: the control posts there."""

    def emergency_config(app: Flask) -> dict[str, Any]:
        page = client_as(app, "root", "admin").get(PANEL).get_data(as_text=True)
        block = re.search(r'id="admin-page">(.*?)</script>', page, re.S)
        assert block
        return dict(json.loads(block.group(1))["api"]["emergency"])

    assert emergency_config(build_app(service)) == {
        "url": "/api/maintenance/emergency",
        "dedicated": True,
    }
    assert service.state.load().mode is MaintenanceMode.NORMAL  # nothing was activated


def test_outcomes_ride_in_a_signed_redirect_and_forged_ones_show_nothing(
    admin: FlaskClient,
) -> None:
    """The outcome of a post is carried in the redirect URL (a concurrent request of the
    page cannot overwrite it, as it can a cookie session); a crafted one is ignored."""
    done = post_enable(admin, reason="Disk swap", duration="10m", acknowledge_warnings="yes")
    assert done.status_code == 303 and "notice=" in done.headers["Location"]
    page = admin.get(done.headers["Location"]).get_data(as_text=True)
    assert "flash-success" in page and "Maintenance (normal) is on" in page
    forged = admin.get(f"{PANEL}?notice=W1sic3VjY2VzcyIsImhpIl1d.bad.sig")
    assert forged.status_code == 200 and b"flash-success" not in forged.data


def test_a_store_the_fleet_does_not_use_is_reported_before_enabling(
    admin: FlaskClient, service: EnhancedMaintenanceModeService
) -> None:
    service.enable_maintenance("Known", enabled_by="ops")
    assert "store_mismatch" not in findings_for(admin)
    # A node acknowledged a version the store never reached: the store was rolled back.
    NodeRegistry(service.redis, service.keys).heartbeat("web@ahead:1:bbbbbb", 99, {"kind": "web"})
    service.record.forget()
    found = findings_for(admin)["store_mismatch"]
    assert found["level"] == "warning" and "fleet has seen version 99" in found["message"]


def test_editing_an_emergency_already_on_does_not_ask_for_the_phrase_again() -> None:
    from werkzeug.datastructures import MultiDict

    from maintenance.web.admin.forms import parse_enable

    form = MultiDict({"reason": "Leaked token: rotating", "mode": "emergency", "duration": "1h"})
    declaring = parse_enable(form, emergency_phrase="EMERGENCY", actor="root")
    assert "confirm_emergency" in declaring.errors
    editing = parse_enable(form, emergency_phrase="EMERGENCY", actor="root", in_emergency=True)
    assert editing.ok, editing.errors
