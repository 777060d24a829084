"""The Flask extension pattern: one ``MaintenanceModeMiddleware`` set up on two apps keeps
each app's own state in ``app.extensions["maintenance"]`` (service, settings, sessions,
API), so the second ``init_app`` changes nothing of the first app's (real Redis, SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify

from maintenance import EnhancedMaintenanceModeService
from maintenance.web import MaintenanceModeMiddleware, WebState
from tests.support import redis_prefix
from tests.web.test_gate import enable

JSON = {"Accept": "application/json"}


def _app(name: str, **config: Any) -> Flask:
    app = Flask(name)
    app.config.update(SECRET_KEY="two-apps", TESTING=True, MAINTENANCE_CLI=False, **config)

    @app.post("/jobs")
    def create_job() -> Any:
        return jsonify(created=True)

    return app


def test_one_extension_on_two_apps_keeps_each_apps_own_state(
    web_service: EnhancedMaintenanceModeService,
    operator: EnhancedMaintenanceModeService,
    make_service: Any,
    redis_url: str,
    tmp_path: Path,
) -> None:
    with redis_prefix(redis_url) as other_prefix:
        other = make_service(
            kind="web",
            redis_prefix=other_prefix,
            database_url=f"sqlite:///{tmp_path / 'second.db'}",
        ).start()
        ext = MaintenanceModeMiddleware()
        first = _app(
            "first",
            MAINTENANCE_SERVICE=web_service,
            MAINTENANCE_MESSAGES={"default": "first app: {reason}"},
        )
        second = _app(
            "second",
            MAINTENANCE_SERVICE=other,
            MAINTENANCE_API_PREFIX="/ops/maintenance",
            MAINTENANCE_MESSAGES={"default": "second app: {reason}"},
        )
        ext.init_app(first)
        ext.init_app(second)

        a, b = first.extensions["maintenance"], second.extensions["maintenance"]
        assert isinstance(a, WebState) and isinstance(b, WebState) and a is not b
        assert a.extension is ext and b.extension is ext
        assert (a.service, b.service) == (web_service, other)
        assert a.sessions is not b.sessions and a.api is not b.api
        assert ext.config_for(first).api_prefix == "/api/maintenance"
        assert ext.config_for(second).api_prefix == "/ops/maintenance"
        with second.test_request_context("/"):
            assert ext.service is other and ext.sessions is b.sessions
            assert ext.config.api_prefix == "/ops/maintenance"
        with pytest.raises(RuntimeError, match="several apps"):
            _ = ext.service  # outside an app context: which app's would be a guess

        # Each app's gate asks its own service and answers with its own settings.
        enable(operator, reason="first only")
        refused = first.test_client().post("/jobs", headers=JSON)
        assert refused.status_code == 503
        assert refused.get_json()["message"] == "first app: first only"
        assert refused.get_json()["status_url"] == "/api/maintenance/status"
        assert second.test_client().post("/jobs", headers=JSON).status_code == 200

        assert other.enable_maintenance("second only", enabled_by="ops", wait=5).fenced
        refused = second.test_client().post("/jobs", headers=JSON)
        assert refused.get_json()["message"] == "second app: second only"
        assert refused.get_json()["status_url"] == "/ops/maintenance/status"
        assert second.test_client().get("/ops/maintenance/status").get_json()["reason"] == (
            "second only"
        )
        assert second.test_client().get("/api/maintenance/status").status_code == 404
        assert first.test_client().get("/api/maintenance/status").get_json()["reason"] == (
            "first only"
        )


def test_a_lone_app_is_found_outside_an_app_context(
    web_service: EnhancedMaintenanceModeService,
) -> None:
    """App factories read ``ext.service`` right after ``init_app``, before any request."""
    ext = MaintenanceModeMiddleware()
    app = _app("lone", MAINTENANCE_SERVICE=web_service)
    ext.init_app(app)
    assert ext.service is web_service
    assert ext.sessions is app.extensions["maintenance"].sessions
