"""Emergency on the web side: the admin API declares it, every non-admin Redis session is
gone and non-admin logins are refused; critical-admin-only shuts out ordinary admins;
lifting through the API writes the report. No Celery app in this process."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maintenance import EnhancedMaintenanceModeService, MaintenanceMode
from maintenance.emergency import controller_for
from maintenance.reports import load_report
from tests.support import session_keys as _session_keys
from tests.support import with_redis_sessions
from tests.web.conftest import build_app, login

ORIGIN = {"Origin": "http://localhost"}
API = "/api/maintenance"


@pytest.fixture
def web(make_service: Any, redis_url: str, prefix: str) -> Flask:
    """The web tests' app on Flask-Session's Redis server-side sessions (real Redis)."""
    service = make_service(kind="web").start()
    return with_redis_sessions(build_app(service), redis_url, prefix)


def _service(app: Flask) -> EnhancedMaintenanceModeService:
    return app.extensions["maintenance"].service  # type: ignore[no-any-return]


def _me(client: FlaskClient) -> Any:
    return client.get("/me").get_json()


def test_non_admin_sessions_are_gone_and_non_admin_login_is_refused(
    web: Flask, redis_url: str, prefix: str
) -> None:
    users = [login(web.test_client(), name) for name in ("ann", "ben")]
    admin = login(web.test_client(), "root", "admin")
    assert len(_session_keys(redis_url, prefix)) == 3

    response = admin.post(
        f"{API}/emergency",
        json={"reason": "credential leak", "duration": None, "critical_admin_only": False},
        headers=ORIGIN,
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["fenced"] and body["trigger"] == "api" and body["triggered_by"] == "root"
    assert body["sessions"]["count"] == 2 and body["sessions"]["deleted"] == 2
    assert body["status"]["mode"] == "emergency" and body["status"]["login_blocked"]

    assert len(_session_keys(redis_url, prefix)) == 1  # only the admin's
    for client in users:  # logged out, and as anonymous visitors refused everything
        assert client.get("/me").status_code == 503
    refused = web.test_client().post("/login", json={"username": "ann"})
    assert refused.status_code == 503
    assert _me(admin) == {"username": "root", "role": "admin"}
    assert login(web.test_client(), "root", "admin")  # admins still get in

    progress = admin.get(f"{API}/emergency").get_json()
    assert progress["emergency_id"] == body["emergency_id"] and progress["phase"] == "grace"

    controller_for(_service(web)).deactivate_emergency_mode("root")
    for client in users:  # still logged out once it is over
        assert _me(client) == {"username": None, "role": None}
    assert _me(admin) == {"username": "root", "role": "admin"}


def test_critical_admin_only_shuts_out_ordinary_admins(web: Flask) -> None:
    admin = login(web.test_client(), "root", "admin")
    critical = login(web.test_client(), "chief", "critical")
    service = _service(web)
    control = controller_for(service)
    control.activate_emergency_mode("ransomware", "chief", 30, 10, "automated")
    assert admin.get("/admin").status_code == 200
    control.enable_critical_admin_only("chief")
    assert admin.get("/admin").status_code == 503
    assert critical.get("/admin").status_code == 200
    assert (
        web.test_client().post("/login", json={"username": "x", "role": "admin"}).status_code == 503
    )
    declared = service.history(10, kinds=("emergency_activated",))[0]
    assert declared.details["trigger"] == "automated"


def test_lifting_through_the_api_checks_then_writes_the_report(web: Flask) -> None:
    admin = login(web.test_client(), "root", "admin")
    declared = admin.post(
        f"{API}/emergency",
        json={"reason": "outage", "grace_period": 0, "kill_after": 0},
        headers=ORIGIN,
    ).get_json()
    again = admin.post(f"{API}/emergency", json={"reason": "outage"}, headers=ORIGIN)
    assert again.status_code == 409

    lifted = admin.post(f"{API}/emergency/deactivate", json={}, headers=ORIGIN)
    assert lifted.status_code == 200, lifted.get_data(as_text=True)
    body = lifted.get_json()
    assert body["check"]["ok"] and body["report_id"] == declared["emergency_id"]
    assert body["requeue"] == "pending"  # no Celery app here: the workers requeue
    service = _service(web)
    assert service.state.load().mode is MaintenanceMode.EMERGENCY  # mode kept, not active
    assert not service.state.load().is_active
    report = load_report(service, declared["emergency_id"])["body"]
    assert report["trigger"] == {"kind": "api", "by": "root"} and not report["ongoing"]
    assert login(web.test_client(), "ann")  # logins are open again
    off_again = admin.post(f"{API}/emergency/deactivate", json={}, headers=ORIGIN)
    assert off_again.status_code == 409


def test_the_emergency_endpoints_are_for_administrators(web: Flask) -> None:
    user = login(web.test_client(), "ann")
    assert user.post(f"{API}/emergency", json={"reason": "x"}, headers=ORIGIN).status_code == 403
    assert web.test_client().get(f"{API}/emergency").status_code == 401
    admin = login(web.test_client(), "root", "admin")
    bad = admin.post(f"{API}/emergency", json={"reason": "x", "grace_period": -1}, headers=ORIGIN)
    assert bad.status_code == 400 and bad.get_json()["field"] == "grace_period"
    assert not _service(web).state.load().is_active


def test_force_session_cleanup_removes_sessions_and_refuses_logins(
    web: Flask, redis_url: str, prefix: str
) -> None:
    """Also outside an emergency's declaration: during maintenance that let users stay."""
    user = login(web.test_client(), "ann")
    admin = login(web.test_client(), "root", "admin")
    service = _service(web)
    service.enable_maintenance("db upgrade", enabled_by="ops", block_login=False, wait=5)
    assert _me(user) == {"username": "ann", "role": "user"}  # reads stay open in NORMAL

    swept = controller_for(service).force_session_cleanup("ops")
    assert swept["count"] == 1 and swept["deleted"] == 1
    assert len(_session_keys(redis_url, prefix)) == 1
    assert _me(user) == {"username": None, "role": None}
    assert web.test_client().post("/login", json={"username": "ann"}).status_code == 503
    assert _me(admin) == {"username": "root", "role": "admin"}
