"""During a critical-only lockdown only critical administrators may change anything,
through every web entry point: an ordinary admin's session is ended like any other, and
what they still send is refused with 403 JSON (or the panel's refusal), state unchanged."""

from __future__ import annotations

import pytest
from flask import Flask

from maintenance import EnhancedMaintenanceModeService, MaintenanceMode
from maintenance.commands import Actor
from maintenance.commands.bypass import bypass_link
from maintenance.commands.disable import disable
from maintenance.commands.recover import recover
from maintenance.commands.sessions import invalidate_sessions
from maintenance.emergency import controller_for
from maintenance.errors import NotAuthorized
from tests.admin_ui.app import PANEL

from .conftest import API, ORIGIN, client_as, me, panel_token

WRITES = [
    ("/enable", {"reason": "back to normal", "mode": "emergency", "critical_admin_only": False}),
    ("/enable", {"reason": "calmer", "mode": "normal"}),
    ("/disable", {}),
    ("/emergency/deactivate", {"force": True}),
    ("/sessions/invalidate", {}),
    ("/login-block", {"blocked": False}),
    ("/bypass-link", {}),
    ("/emergency", {"reason": "another"}),
]


@pytest.fixture
def lockdown(web_service: EnhancedMaintenanceModeService) -> int:
    control = controller_for(web_service)
    control.activate_emergency_mode("ransomware", "chief", 30, 10, "automated", wait=5)
    return control.enable_critical_admin_only("chief", wait=5).status.version


@pytest.mark.parametrize(("path", "body"), WRITES)
def test_an_ordinary_admin_is_refused_403_and_logged_out(
    app: Flask, web_service: EnhancedMaintenanceModeService, path: str, body: dict[str, object]
) -> None:
    admin = client_as(app, "root", "admin")  # logged in before the lockdown
    control = controller_for(web_service)
    control.activate_emergency_mode("ransomware", "chief", 30, 10, "automated", wait=5)
    version = control.enable_critical_admin_only("chief", wait=5).status.version

    response = admin.post(f"{API}{path}", json=body, headers=ORIGIN)
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.is_json and "critical-only lockdown" in response.get_json()["message"]
    status = web_service.state.load()
    assert status.version == version and status.critical_admin_only and status.is_active
    controller_for(web_service).deactivate_emergency_mode("chief", force=True, wait=5)
    assert me(admin) == {"username": None, "role": None}  # the session was ended


def test_the_panel_refuses_an_ordinary_admin_too(
    app: Flask, web_service: EnhancedMaintenanceModeService
) -> None:
    admin = client_as(app, "root", "admin")
    token = panel_token(admin)  # a form loaded before the lockdown
    control = controller_for(web_service)
    control.activate_emergency_mode("ransomware", "chief", 30, 10, "automated", wait=5)
    version = control.enable_critical_admin_only("chief", wait=5).status.version
    response = admin.post(f"{PANEL}disable", data={"csrf_token": token, "requeue": "on"})
    assert response.status_code == 503  # the panel is closed to them, the session ended
    assert web_service.state.load().version == version


def test_critical_admins_still_act(
    app: Flask, web_service: EnhancedMaintenanceModeService, lockdown: int
) -> None:
    chief = client_as(app, "chief", "critical")
    response = chief.post(
        f"{API}/emergency/deactivate", json={"force": True, "wait": 5}, headers=ORIGIN
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert not web_service.state.load().is_active
    assert me(chief) == {"username": "chief", "role": "critical"}


def test_the_command_layer_refuses_whoever_calls_it(
    web_service: EnhancedMaintenanceModeService, lockdown: int
) -> None:
    """The rule is in the commands, not in the web views: any adapter gets it."""
    ordinary = Actor("root", "api", is_admin=True, is_critical_admin=False)
    with pytest.raises(NotAuthorized, match="critical-only lockdown"):
        disable(web_service, ordinary)
    with pytest.raises(NotAuthorized, match="critical-only lockdown"):
        invalidate_sessions(web_service, ordinary)
    with pytest.raises(NotAuthorized, match="critical-only lockdown"):
        bypass_link(web_service, ordinary, ttl=600)

    def requeue(*_args: object, **_kw: object) -> None:
        raise AssertionError("a refused recovery must publish nothing")

    with pytest.raises(NotAuthorized, match="critical-only lockdown"):
        recover(web_service, ordinary, requeue)
    with pytest.raises(NotAuthorized, match="administrators only"):
        disable(web_service, Actor("ann", "api", is_admin=False))
    assert web_service.state.load().version == lockdown
    assert web_service.state.load().mode is MaintenanceMode.EMERGENCY
    # The CLI and Python run as the deployment's operator: every right.
    done = disable(web_service, Actor.operator("ops"), wait=5)
    assert done.committed and not web_service.state.load().is_active
