"""The same operator action has the same effects whichever entry point asks for it: an
enable through the CLI, the JSON API or the admin panel logs every non-admin out (their
server-side sessions are deleted and a cookie captured before still fails after the
maintenance ended), while administrators stay logged in."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from maintenance import EnhancedMaintenanceModeService
from tests.admin_ui.app import PANEL
from tests.support import session_keys

from .conftest import API, ORIGIN, Cli, client_as, me, panel_token


def _enable(entry: str, app: Flask, admin: Any, cli: Cli) -> None:
    if entry == "cli":
        out = cli(
            "enable", "--reason", "db upgrade", "--wait", "5", MAINTENANCE_BLOCK_LOGIN="false"
        )
        assert out.returncode == 0, out.stderr
        assert "2 non-admin session(s) logged out" in out.stdout, out.stdout
    elif entry == "api":
        response = admin.post(
            f"{API}/enable",
            json={"reason": "db upgrade", "block_login": False, "wait": 5},
            headers=ORIGIN,
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert body["committed"] and body["complete"], body
        assert body["sessions"]["count"] == 2 and body["effects"]["sessions"]["ok"]
    else:
        response = admin.post(
            f"{PANEL}enable",
            data={
                "csrf_token": panel_token(admin),
                "reason": "db upgrade",
                "mode": "normal",
                "invalidate_sessions": "on",
                "acknowledge_warnings": "on",
            },
        )
        assert response.status_code == 303, response.get_data(as_text=True)[:2000]
        page = admin.get(response.headers["Location"]).get_data(as_text=True)
        assert "2 non-admin session(s) logged out" in page


@pytest.mark.parametrize("entry", ["cli", "api", "panel"])
def test_enable_logs_non_admins_out_whichever_entry_point(
    entry: str,
    app: Flask,
    web_service: EnhancedMaintenanceModeService,
    cli: Cli,
    redis_url: str,
    prefix: str,
) -> None:
    users = [client_as(app, name) for name in ("ann", "ben")]
    admin = client_as(app, "root", "admin")
    assert len(session_keys(redis_url, prefix)) == 3

    _enable(entry, app, admin, cli)

    status = web_service.state.load()
    assert status.is_active and not status.login_blocked  # only the sweep logs users out
    assert len(session_keys(redis_url, prefix)) == 1  # only the admin's
    swept = web_service.history(5, kinds=("sessions_invalidated",))
    assert len(swept) == 1 and swept[0].details["count"] == 2

    web_service.disable_maintenance("ops", wait=5)
    for client in users:  # cookies captured before the enable still do not work
        assert me(client) == {"username": None, "role": None}
    assert me(admin) == {"username": "root", "role": "admin"}
