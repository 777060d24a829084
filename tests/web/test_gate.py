"""The request gate: every operation family refused for users and allowed for admins,
what is never blocked, EMERGENCY and lockdown, TEST mode, admin detection, bypass context."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from maintenance import EnhancedMaintenanceModeService, OperationType
from maintenance.attempts import logged_attempts
from tests.helpers import wait_for
from tests.web.conftest import FAMILY_ROUTES, login

Op = OperationType


def enable(operator: EnhancedMaintenanceModeService, **kwargs: object) -> None:
    kwargs.setdefault("duration", "30m")
    result = operator.enable_maintenance(
        kwargs.pop("reason", "database upgrade"), enabled_by="ops", wait=5, **kwargs
    )
    assert result.fenced, result


@pytest.mark.parametrize(("method", "path", "endpoint", "op"), FAMILY_ROUTES)
def test_each_operation_family_is_refused_for_a_user_and_allowed_for_an_admin(
    app: Flask,
    user_client: FlaskClient,
    admin_client: FlaskClient,
    operator: EnhancedMaintenanceModeService,
    method: str,
    path: str,
    endpoint: str,
    op: OperationType,
) -> None:
    assert user_client.open(path, method=method).status_code == 200  # before maintenance
    enable(operator)
    refused = user_client.open(path, method=method, headers={"Accept": "application/json"})
    assert refused.status_code == 503
    body = refused.get_json()
    assert body["error"] == "maintenance"
    assert body["operation"] == op.value
    assert body["reason"] == "database upgrade"
    allowed = admin_client.open(path, method=method)
    assert allowed.status_code == 200
    assert allowed.get_json()["done"] == endpoint
    # The admin's request ran inside service.bypass: Celery publishes would pass the gate.
    assert allowed.get_json()["bypass"] == "root"


def test_unclassified_mutating_requests_are_refused_and_reads_stay_available(
    user_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator)
    assert user_client.post("/notes").status_code == 503
    page = user_client.get("/dashboard")
    assert page.status_code == 200
    assert "maintenance-banner" in page.get_data(as_text=True)


@pytest.mark.parametrize("mode", ["normal", "emergency"])
def test_static_health_status_api_metrics_and_login_are_never_blocked(
    app: Flask, operator: EnhancedMaintenanceModeService, mode: str
) -> None:
    client = app.test_client()
    enable(operator, mode=mode)
    assert client.get("/static/missing.css").status_code == 404  # routed to static, not 503
    assert client.get("/health").status_code == 200
    assert client.get("/api/maintenance/status").status_code == 200
    assert client.get("/api/maintenance/message?operation=caption_generation").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/_maintenance/bypass/not-a-token").status_code == 403  # the view ran
    # Login stays reachable so admins can always sign in.
    assert client.post("/login", json={"username": "root", "role": "admin"}).status_code == 200


def test_unknown_routes_still_get_404_during_maintenance(
    user_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator)
    assert user_client.post("/no/such/route").status_code == 404


def test_emergency_blocks_reads_for_users_but_not_for_admins(
    user_client: FlaskClient, admin_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, mode="emergency")
    assert user_client.get("/dashboard").status_code == 503
    assert user_client.post("/jobs").status_code == 503
    # Logins are blocked, so the user's session was logged out on that first request.
    assert user_client.get("/me").status_code == 503  # a read: blocked in EMERGENCY
    assert admin_client.get("/me").get_json() == {"username": "root", "role": "admin"}
    assert admin_client.get("/dashboard").status_code == 200
    assert admin_client.post("/jobs").status_code == 200


def test_critical_admin_only_lets_only_critical_admins_through(
    app: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    admin = login(app.test_client(), "root", "admin")
    critical = login(app.test_client(), "oncall", "critical")
    enable(operator, mode="emergency", critical_admin_only=True)
    assert admin.get("/dashboard").status_code == 503
    assert admin.post("/jobs").status_code == 503
    assert critical.get("/dashboard").status_code == 200
    assert critical.post("/jobs").status_code == 200


def test_test_mode_lets_everything_through_and_records_would_blocks(
    user_client: FlaskClient,
    admin_client: FlaskClient,
    operator: EnhancedMaintenanceModeService,
    web_service: EnhancedMaintenanceModeService,
) -> None:
    enable(operator, mode="test")
    assert user_client.post("/captions/generate").status_code == 200
    assert user_client.post("/images/upload").status_code == 200
    assert user_client.post("/images/upload").status_code == 200
    assert admin_client.post("/jobs").status_code == 200  # admins would pass: not recorded
    # The web node adds its counts to Redis a few milliseconds after the requests.
    expected = {"caption_generation": 1, "image_processing": 2}
    live = wait_for(
        lambda: (
            (s := operator.get_maintenance_status()).extra["would_block_attempts"] == expected and s
        ),
        5,
        what="the web node's counts in Redis",
    )
    assert live.extra["blocked_attempts"] == {}
    assert web_service.attempts.flush()
    rows = logged_attempts(operator, live.activation_id)
    assert {(r["user"], r["operation"], bool(r["would_block"])) for r in rows} == {
        ("alice", "caption_generation", True),
        ("alice", "image_processing", True),
    }


def test_blocked_attempts_are_counted_rated_and_logged_with_user_endpoint_and_mode(
    user_client: FlaskClient,
    operator: EnhancedMaintenanceModeService,
    web_service: EnhancedMaintenanceModeService,
) -> None:
    from maintenance.attempts import rates

    enable(operator)
    for _ in range(3):
        assert user_client.post("/platform/switch").status_code == 503
    assert user_client.post("/profile").status_code == 503
    # The web node adds its counts to Redis a few milliseconds after the refusals.
    expected = {"platform_operations": 3, "user_data_modification": 1}
    live = wait_for(
        lambda: (
            (s := operator.get_maintenance_status()).extra["blocked_attempts"] == expected and s
        ),
        5,
        what="the web node's counts in Redis",
    )
    assert rates(operator, minutes=2)["platform_operations"][-1] >= 3
    assert web_service.attempts.flush()
    rows = logged_attempts(operator, live.activation_id)
    # Logins are blocked, so alice's session ended with her first refused request
    # (which is still attributed to her); the later ones came from a logged-out browser.
    assert [r["user"] for r in rows] == [None, None, None, "alice"]
    newest = rows[0]
    assert newest["operation"] == "user_data_modification"
    assert newest["endpoint"] == "update_profile"
    assert newest["method"] == "POST"
    assert newest["mode"] == "normal"
    assert newest["channel"] == "http"


def test_flask_login_users_are_recognised(
    web_service: EnhancedMaintenanceModeService, operator: EnhancedMaintenanceModeService
) -> None:
    from flask_login import LoginManager, UserMixin, login_user

    from tests.web.conftest import build_app

    class User(UserMixin):
        def __init__(self, uid: str, is_admin: bool) -> None:
            self.id, self.username, self.is_admin = uid, uid, is_admin

    users = {"ada": User("ada", True), "bob": User("bob", False)}
    app = build_app(web_service)
    manager = LoginManager(app)
    manager.user_loader(users.get)

    @app.post("/fl-login/<uid>")
    def fl_login(uid: str) -> str:
        login_user(users[uid])
        return "ok"

    admin, user = app.test_client(), app.test_client()
    admin.post("/fl-login/ada")
    user.post("/fl-login/bob")
    enable(operator)
    assert user.post("/jobs").status_code == 503
    response = admin.post("/jobs")
    assert response.status_code == 200
    assert response.get_json()["bypass"] == "ada"


def test_admin_detection_is_pluggable_by_config_and_by_subclass(
    web_service: EnhancedMaintenanceModeService, operator: EnhancedMaintenanceModeService
) -> None:
    from flask import Flask as _Flask
    from flask import request

    from maintenance.web import MaintenanceModeMiddleware

    app = _Flask("pluggable")
    app.config.update(
        SECRET_KEY="x",
        MAINTENANCE_CURRENT_USER=lambda: request.headers.get("X-User"),
        MAINTENANCE_IS_ADMIN=lambda user: user == "boss",
    )
    MaintenanceModeMiddleware(app, web_service)
    app.add_url_rule("/jobs", "create_job", lambda: "ok", methods=["POST"])

    class HeaderAdmins(MaintenanceModeMiddleware):
        def current_user(self) -> object:
            return request.headers.get("X-User")

        def is_admin_user(self, user: object = None) -> bool:
            return user == "chief"

    sub = _Flask("subclass")
    sub.config.update(SECRET_KEY="x")
    HeaderAdmins(sub, web_service)
    sub.add_url_rule("/jobs", "create_job", lambda: "ok", methods=["POST"])
    enable(operator)
    assert app.test_client().post("/jobs", headers={"X-User": "boss"}).status_code == 200
    assert app.test_client().post("/jobs", headers={"X-User": "joe"}).status_code == 503
    assert sub.test_client().post("/jobs", headers={"X-User": "chief"}).status_code == 200
    assert sub.test_client().post("/jobs", headers={"X-User": "boss"}).status_code == 503


def test_the_gate_decides_through_is_allowed_operation(
    web_service: EnhancedMaintenanceModeService, operator: EnhancedMaintenanceModeService
) -> None:
    """``is_allowed_operation`` is the gate's one decision: what it says for a request is
    what the gate does, and an app that overrides it changes the gate."""
    from flask import Flask as _Flask
    from flask import jsonify

    from maintenance.web import MaintenanceModeMiddleware

    class OnlyJobs(MaintenanceModeMiddleware):
        def is_allowed_operation(self, operation, user=None, *, record=False):  # type: ignore[no-untyped-def]
            return operation is Op.JOB_CREATION

    def build(ext: MaintenanceModeMiddleware) -> _Flask:
        app = _Flask("decides")
        app.config.update(SECRET_KEY="x", MAINTENANCE_CLI=False)
        ext.init_app(app)
        app.add_url_rule("/jobs", "create_job", lambda: "ok", methods=["POST"])
        app.add_url_rule("/review/batch", "batch_review", lambda: "ok", methods=["POST"])

        @app.get("/ask/<operation>")
        def ask(operation: str) -> object:
            return jsonify(allowed=ext.is_allowed_operation(operation))

        return app

    enable(operator)
    plain = build(MaintenanceModeMiddleware(service=web_service)).test_client()
    assert plain.get("/ask/job_creation").get_json() == {"allowed": False}
    assert plain.get("/ask/read_operations").get_json() == {"allowed": True}
    assert plain.post("/jobs").status_code == 503
    overridden = build(OnlyJobs(service=web_service)).test_client()
    assert overridden.post("/jobs").status_code == 200
    assert overridden.post("/review/batch").status_code == 503


def test_exempt_endpoints_and_paths_from_config(
    make_app, operator: EnhancedMaintenanceModeService
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(
        MAINTENANCE_EXEMPT_ENDPOINTS=["update_*"], MAINTENANCE_EXEMPT_PATHS=["/images/*"]
    )
    client = login(app.test_client(), "alice")
    enable(operator)
    assert client.post("/profile").status_code == 200
    assert client.post("/images/upload").status_code == 200
    assert client.post("/jobs").status_code == 503


def test_the_gate_decides_from_the_local_cache_while_redis_is_down(make_service) -> None:  # type: ignore[no-untyped-def]
    """Requests never wait on the network: with Redis killed, users are still refused,
    admins still served and the status endpoint still answers, all from the cache."""
    from tests.services import PrivateRedis
    from tests.web.conftest import build_app

    private = PrivateRedis().start()
    try:
        service = make_service(kind="web", redis_url=private.url).start()
        operator = make_service(kind="cli", register=False, redis_url=private.url)
        app = build_app(service)
        user = login(app.test_client(), "alice")
        admin = login(app.test_client(), "root", "admin")
        enable(operator)
        private.kill()
        wait_for(lambda: not service.cache.health.redis_ok, 5, what="the cache noticing")
        for _ in range(20):
            assert user.post("/jobs").status_code == 503
            assert admin.post("/jobs").status_code == 200
        status = user.get("/api/maintenance/status").get_json()
        assert status["is_active"] is True
    finally:
        private.close()


def test_the_admin_bypass_never_outlives_its_request(
    make_app, operator: EnhancedMaintenanceModeService
) -> None:  # type: ignore[no-untyped-def]
    from maintenance.roles import current_bypass_user

    app = make_app()

    @app.post("/jobs/explode")
    def explode_job() -> str:
        raise RuntimeError("boom")

    admin = login(app.test_client(), "root", "admin")
    anonymous = app.test_client()
    enable(operator)
    assert admin.post("/jobs").get_json()["bypass"] == "root"
    assert current_bypass_user() is None  # left once the response was made
    with pytest.raises(RuntimeError):  # TESTING propagates: no response is ever made
        admin.post("/jobs/explode")
    # The next request on this thread starts clean: no admin bypass for an anonymous visitor.
    assert anonymous.get("/admin").get_json()["bypass"] is None
    assert current_bypass_user() is None


def test_requests_let_through_keep_their_caching_headers(app: Flask) -> None:
    """Peeking at the session must not mark it accessed (no Vary: Cookie, no cookie set)."""
    response = app.test_client().get("/health")
    assert response.status_code == 200
    assert "Vary" not in response.headers
    assert "Set-Cookie" not in response.headers


def test_failing_closed_refuses_work_and_says_why(make_service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """MAINTENANCE_FAIL_CLOSED with Redis and SQL both unreachable: mutating work is
    refused for users (not admins), with a reason instead of 'operating normally'."""
    import shutil

    from tests.services import PrivateRedis
    from tests.web.conftest import build_app

    private = PrivateRedis().start()
    db_file = tmp_path / "closed.db"
    try:
        service = make_service(
            kind="web",
            redis_url=private.url,
            database_url=f"sqlite:///{db_file}",
            fail_closed=True,
        ).start()
        app = build_app(service)
        admin = login(app.test_client(), "root", "admin")
        user = app.test_client()
        assert user.post("/jobs").status_code == 200
        private.kill()
        service.db.dispose()
        for suffix in ("", "-wal", "-shm"):
            (tmp_path / f"closed.db{suffix}").unlink(missing_ok=True)
        db_file.mkdir()  # the database path is now unusable
        wait_for(
            lambda: not service.cache.health.redis_ok and not service.cache.health.sql_ok,
            10,
            what="both stores seen as down",
        )
        refused = user.post("/jobs", headers={"Accept": "application/json"})
        assert refused.status_code == 503
        assert "control plane" in refused.get_json()["reason"]
        assert user.get("/dashboard").status_code == 200  # reads stay available
        assert admin.post("/jobs").status_code == 200
    finally:
        private.close()
        shutil.rmtree(db_file, ignore_errors=True)


def test_the_gate_runs_where_it_was_added_among_the_apps_request_hooks(
    web_service: EnhancedMaintenanceModeService, operator: EnhancedMaintenanceModeService
) -> None:
    from flask import Flask as _Flask
    from flask import g, request

    from maintenance.web import MaintenanceModeMiddleware

    def build(hook_first: bool) -> tuple[_Flask, list[str]]:
        seen: list[str] = []
        app = _Flask(f"order-{hook_first}")
        app.config.update(
            SECRET_KEY="x",
            MAINTENANCE_CURRENT_USER=lambda: getattr(g, "user", None),
            MAINTENANCE_IS_ADMIN=lambda user: user == "boss",
        )

        def load_user() -> None:  # what an app's own login hook does
            seen.append("app hook")
            g.user = request.headers.get("X-User")

        if hook_first:
            app.before_request(load_user)
        MaintenanceModeMiddleware(app, web_service)
        if not hook_first:
            app.before_request(load_user)
        app.add_url_rule("/jobs", "create_job", lambda: "ok", methods=["POST"])
        return app, seen

    # Added before the extension: it runs first, so the gate sees the user it loads.
    first, seen_first = build(hook_first=True)
    # Added after: the gate runs first (no user yet); a refusal stops the request there.
    after, seen_after = build(hook_first=False)
    assert first.test_client().post("/jobs").status_code == 200
    assert after.test_client().post("/jobs").status_code == 200
    assert seen_first == seen_after == ["app hook"]  # maintenance off: every hook ran once
    enable(operator)
    assert first.test_client().post("/jobs", headers={"X-User": "boss"}).status_code == 200
    assert after.test_client().post("/jobs", headers={"X-User": "boss"}).status_code == 503
    assert seen_after == ["app hook"]  # refused by the gate before the app's hook ran
    assert first.test_client().post("/jobs", headers={"X-User": "joe"}).status_code == 503
