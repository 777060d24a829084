"""``flask maintenance``: the core CLI mounted on the app, using the app's settings."""

from __future__ import annotations

import json

from flask import Flask

from maintenance import EnhancedMaintenanceModeService
from tests.web.test_gate import enable


def test_flask_maintenance_status_reads_the_apps_control_plane(
    app: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, reason="cli check")
    result = app.test_cli_runner().invoke(args=["maintenance", "status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["is_active"] is True
    assert data["reason"] == "cli check"


def test_flask_maintenance_enable_and_disable_reach_the_web_node(
    app: Flask, web_service: EnhancedMaintenanceModeService
) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["maintenance", "enable", "--reason", "from flask", "--wait", "5", "--by", "ops"]
    )
    assert result.exit_code == 0, result.output
    assert web_service.status.is_active  # fenced: the web node applied it before exit
    assert app.test_client().post("/jobs").status_code == 503
    result = runner.invoke(args=["maintenance", "disable", "--wait", "5", "--by", "ops"])
    assert result.exit_code == 0, result.output
    assert app.test_client().post("/jobs").status_code == 200


def test_plugins_are_mounted_too(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["maintenance", "--help"])
    assert result.exit_code == 0
    assert "sessions" in result.output
    assert "status" in result.output


def test_enable_secret_prints_a_link_that_lets_one_browser_through(app: Flask) -> None:
    from urllib.parse import urlsplit

    result = app.test_cli_runner().invoke(
        args=["maintenance", "enable", "--reason", "qa", "--secret", "--wait", "5", "--by", "ops"]
    )
    assert result.exit_code == 0, result.output
    link = next(line for line in result.output.splitlines() if "Bypass link" in line)
    path = urlsplit(link.split()[-1]).path
    tester, stranger = app.test_client(), app.test_client()
    assert tester.get(path).status_code == 302
    assert tester.post("/jobs").status_code == 200
    assert stranger.post("/jobs").status_code == 503
