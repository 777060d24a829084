"""MaintenanceSessionManager on real sessions: Flask-Session Redis server-side sessions
(keys removed) and signed cookie sessions (epoch), login blocking, active-session reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask

from maintenance import EnhancedMaintenanceModeService
from maintenance.attempts import logged_attempts
from maintenance.session_index import SessionIndex
from maintenance.session_invalidation import current_epoch
from maintenance.web.session_manager import MaintenanceSessionManager
from tests.helpers import wait_for
from tests.support import MAINTENANCE_CLI, session_keys, with_redis_sessions
from tests.web.conftest import build_app, login
from tests.web.test_gate import enable


@pytest.fixture
def redis_app(web_service: EnhancedMaintenanceModeService, redis_url: str, prefix: str) -> Flask:
    """The test app on Flask-Session's Redis server-side sessions (real Redis, own prefix)."""
    return with_redis_sessions(build_app(web_service), redis_url, prefix)


def manager_of(app: Flask) -> MaintenanceSessionManager:
    manager = app.extensions["maintenance"].sessions
    assert manager is not None
    return manager  # type: ignore[no-any-return]


def test_redis_sessions_of_non_admins_are_removed_and_admins_keep_theirs(
    redis_app: Flask, redis_url: str, prefix: str
) -> None:
    users = [login(redis_app.test_client(), name) for name in ("ann", "ben", "cat")]
    admin = login(redis_app.test_client(), "root", "admin")
    assert len(session_keys(redis_url, prefix)) == 4
    manager = manager_of(redis_app)
    active = manager.get_active_non_admin_sessions(sample=10)
    assert active.count == 3
    assert active.admin_count == 1
    assert {row["user"] for row in active.sample} == {"ann", "ben", "cat"}
    assert all(row["kind"] == "server" for row in active.sample)

    result = manager.invalidate_non_admin_sessions("ops")
    assert (result.count, result.deleted, result.server_side) == (3, 3, True)
    remaining = session_keys(redis_url, prefix)
    assert len(remaining) == 1
    for client in users:
        assert client.get("/me").get_json() == {"username": None, "role": None}
    assert admin.get("/me").get_json() == {"username": "root", "role": "admin"}
    assert session_keys(redis_url, prefix) == remaining
    assert manager.get_active_non_admin_sessions().count == 0


def test_cookie_sessions_from_before_the_epoch_are_turned_away_on_every_node(
    app: Flask, make_service: Callable[..., EnhancedMaintenanceModeService]
) -> None:
    other_node = build_app(make_service(kind="web").start())
    user = login(app.test_client(), "ann")
    admin = login(app.test_client(), "root", "admin")
    cookie = user.get_cookie("session")
    assert cookie is not None
    elsewhere = other_node.test_client()  # the same browser, load-balanced to node 2
    elsewhere.set_cookie("session", cookie.value)
    assert elsewhere.get("/me").get_json()["username"] == "ann"

    result = manager_of(app).invalidate_non_admin_sessions("ops", wait=5)
    assert result.server_side is False
    assert result.epoch >= 1
    assert result.count == 1  # ann's cookie session was indexed at login
    # Node 2 applied the new epoch before invalidate returned (fenced).
    assert manager_of(other_node).epoch == result.epoch
    assert elsewhere.get("/me").get_json() == {"username": None, "role": None}
    assert user.get("/me").get_json() == {"username": None, "role": None}
    assert admin.get("/me").get_json()["username"] == "root"
    # A login after the invalidation is a new session and stays.
    again = login(app.test_client(), "ann")
    assert again.get("/me").get_json()["username"] == "ann"
    assert again.get("/me").get_json()["username"] == "ann"


def test_the_epoch_is_rebuilt_from_sql_when_redis_loses_it(
    app: Flask, web_service: EnhancedMaintenanceModeService, redis_url: str
) -> None:
    epoch = manager_of(app).invalidate_non_admin_sessions("ops").epoch
    redis.Redis.from_url(redis_url).delete(web_service.keys.session_epoch)
    assert current_epoch(SessionIndex.of(web_service), web_service.events) == epoch


def test_non_admin_logins_are_refused_while_blocked_and_admins_always_get_in(
    app: Flask, web_service: EnhancedMaintenanceModeService
) -> None:
    manager = manager_of(app)
    manager.prevent_non_admin_login("ops")
    refused = app.test_client().post("/login", json={"username": "ann", "role": "user"})
    assert refused.status_code == 503
    body = refused.get_json()
    assert body["operation"] == "authentication"
    assert body["title"] == "Sign-in is limited to administrators"
    login(app.test_client(), "root", "admin")
    manager.allow_non_admin_login("ops")
    login(app.test_client(), "ann")
    assert web_service.attempts.flush()
    rows = logged_attempts(web_service, limit=5)
    assert [(r["user"], r["channel"], r["operation"]) for r in rows] == [
        ("ann", "login", "authentication")
    ]


def test_maintenance_blocks_non_admin_logins_and_logs_users_out(
    redis_app: Flask,
    operator: EnhancedMaintenanceModeService,
    redis_url: str,
    prefix: str,
) -> None:
    user = login(redis_app.test_client(), "ann")
    login(redis_app.test_client(), "root", "admin")
    enable(operator)
    assert operator.status.login_blocked
    # The logged-in user is logged out on their next request, server-side data included.
    assert user.get("/me").get_json() == {"username": None, "role": None}
    assert len(session_keys(redis_url, prefix)) == 1
    again = redis_app.test_client().post("/login", json={"username": "ann"})
    assert again.status_code == 503
    login(redis_app.test_client(), "root2", "admin")


def test_a_session_turned_away_is_counted_once_however_often_its_cookie_comes_back(
    app: Flask,
    web_service: EnhancedMaintenanceModeService,
    operator: EnhancedMaintenanceModeService,
) -> None:
    ann, ben = login(app.test_client(), "ann"), login(app.test_client(), "ben")
    # ann's page and its favicon, or a replayed cookie: every request is turned away...
    _block_logins_and_replay(app, ann, web_service, operator)
    assert ben.get("/me").get_json() == {"username": None, "role": None}
    # ...and each session is counted once.
    assert operator.get_maintenance_status().invalidated_sessions == 2


def test_emergency_lockdown_lets_only_critical_admins_log_in(
    app: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, mode="emergency", critical_admin_only=True)
    refused = app.test_client().post("/login", json={"username": "root", "role": "admin"})
    assert refused.status_code == 503
    login(app.test_client(), "oncall", "critical")


def test_test_mode_refuses_no_login_but_records_would_blocks(
    app: Flask,
    operator: EnhancedMaintenanceModeService,
    web_service: EnhancedMaintenanceModeService,
) -> None:
    enable(operator, mode="test")
    login(app.test_client(), "ann")
    login(app.test_client(), "root", "admin")
    # The web node adds its counts to Redis a few milliseconds after the logins.
    wait_for(
        lambda: (
            operator.get_maintenance_status().extra["would_block_attempts"] == {"authentication": 1}
        ),
        5,
        what="the web node's counts in Redis",
    )


def test_active_sessions_sample_is_newest_first_with_last_seen(
    app: Flask, web_service: EnhancedMaintenanceModeService
) -> None:
    for name in ("a1", "a2", "a3", "a4"):
        login(app.test_client(), name)
    active = manager_of(app).get_active_non_admin_sessions(sample=2)
    assert active.count == 4
    assert [row["user"] for row in active.sample] == ["a4", "a3"]
    assert active.sample[0]["last_seen"] >= active.sample[1]["last_seen"]
    assert active.sample[0]["kind"] == "cookie"


def test_a_manager_without_the_app_invalidates_registered_server_side_sessions(
    redis_app: Flask, web_service: EnhancedMaintenanceModeService, redis_url: str, prefix: str
) -> None:
    """The CLI or an emergency handler has no Flask app: the web app registered where its
    sessions live (the same Redis), so the keys still go."""
    login(redis_app.test_client(), "ann")
    login(redis_app.test_client(), "root", "admin")
    standalone = MaintenanceSessionManager(web_service)
    result = standalone.invalidate_non_admin_sessions("cli")
    assert (result.count, result.deleted, result.server_side) == (1, 1, True)
    assert len(session_keys(redis_url, prefix)) == 1


def test_flask_cli_sessions_command_reports_and_invalidates(
    redis_app: Flask, redis_url: str, prefix: str
) -> None:
    import json

    login(redis_app.test_client(), "ann")
    login(redis_app.test_client(), "root", "admin")
    runner = redis_app.test_cli_runner()
    shown = runner.invoke(args=["maintenance", "sessions", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["active"]["count"] == 1
    done = runner.invoke(args=["maintenance", "sessions", "--invalidate", "--by", "ops"])
    assert done.exit_code == 0, done.output
    assert "Invalidated 1 non-admin session(s)" in done.output
    assert len(session_keys(redis_url, prefix)) == 1


def test_maintenance_cli_sessions_plugin_works_without_the_app(
    redis_app: Flask, settings: Any, redis_url: str, prefix: str, tmp_path: Any
) -> None:
    import json
    import os
    import subprocess

    login(redis_app.test_client(), "ann")
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "MAINTENANCE_DATABASE_URL": settings.database_url,
    }
    out = subprocess.run(
        [MAINTENANCE_CLI, "sessions", "--json", "--invalidate", "--by", "ops"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["invalidated"]["count"] == 1
    assert data["invalidated"]["deleted"] == 1
    assert data["active"]["count"] == 0


def test_index_entries_of_expired_sessions_are_pruned(
    app: Flask, web_service: EnhancedMaintenanceModeService
) -> None:
    import time

    index = SessionIndex.of(web_service)
    long_ago = time.time() - 40 * 24 * 3600
    index.touch("~cookie:old", "ghost", False, now=long_ago)
    index.touch("~cookie:new", "ann", False)
    assert index.prune() == 1
    active = index.active_non_admin(window=10**9)
    assert active.count == 1
    assert [row["user"] for row in active.sample] == ["ann"]


def test_sessions_on_a_separate_redis_are_removed_too(
    web_service: EnhancedMaintenanceModeService,
) -> None:
    """Flask-Session on its own Redis server: the keys are deleted from there (client side)."""
    from flask_session import Session

    from tests.services import PrivateRedis

    store = PrivateRedis().start()
    try:
        app = build_app(web_service)
        app.config.update(
            SESSION_TYPE="redis",
            SESSION_REDIS=redis.Redis.from_url(store.url),
            SESSION_KEY_PREFIX="session:",
        )
        Session(app)
        users = [login(app.test_client(), name) for name in ("ann", "ben")]
        login(app.test_client(), "root", "admin")
        result = manager_of(app).invalidate_non_admin_sessions("ops")
        assert (result.count, result.deleted, result.server_side) == (2, 2, True)
        assert len(list(redis.Redis.from_url(store.url).scan_iter("session:*"))) == 1
        assert users[0].get("/me").get_json()["username"] is None
    finally:
        store.close()


def test_non_admins_are_out_before_the_clean_up_and_a_dead_clean_up_is_resumed(
    redis_app: Flask, redis_url: str, prefix: str
) -> None:
    manager = manager_of(redis_app)
    stranded = login(redis_app.test_client(), "dan")
    # A clean-up that died: its index was detached, its session keys never deleted.
    token, detached = manager.index.detach_non_admin()
    assert detached == 1 and manager.index.unfinished_purges() == [token]
    users = [login(redis_app.test_client(), name) for name in ("ann", "ben")]
    admin = login(redis_app.test_client(), "root", "admin")

    result = manager.invalidate_non_admin_sessions("ops", cleanup="background")
    assert result.count == 2 and result.deleted is None and result.cleanup_seconds is None
    assert result.effective_seconds <= result.seconds
    # In effect at once, whether or not the keys are gone yet.
    for client in [*users, stranded]:
        assert client.get("/me").get_json() == {"username": None, "role": None}
    assert admin.get("/me").get_json()["username"] == "root"
    wait_for(lambda: manager.index.unfinished_purges() == [token], 10, what="background purge")

    login(redis_app.test_client(), "eve")
    inline = manager.invalidate_non_admin_sessions("ops", cleanup="inline")
    # eve's key; dan's went when he was turned away, and his detached index is gone too.
    assert inline.count == 1 and inline.deleted == 1
    assert inline.cleanup_seconds is not None
    assert manager.index.unfinished_purges() == []
    assert len(session_keys(redis_url, prefix)) == 1  # the admin's


def test_a_session_never_indexed_is_counted_once_when_turned_away_again_and_again(
    app: Flask,
    web_service: EnhancedMaintenanceModeService,
    operator: EnhancedMaintenanceModeService,
) -> None:
    """A login view that does not call ``schedule_index`` leaves the session without an
    index member until its next request. Turned away before that -- its page and its
    favicon, or a replayed cookie -- it is still one session, counted once."""
    client = app.test_client()
    with client.session_transaction() as sess:  # logged in, never through the index
        sess.update(username="ann", role="user")
    _block_logins_and_replay(app, client, web_service, operator)
    assert operator.get_maintenance_status().invalidated_sessions == 1


def _block_logins_and_replay(
    app: Flask,
    client: Any,
    web_service: EnhancedMaintenanceModeService,
    operator: EnhancedMaintenanceModeService,
) -> None:
    """Block logins, then send ``client``'s session cookie three times: each is turned away."""
    stale = client.get_cookie("session")
    assert stale is not None
    enable(operator)
    wait_for(lambda: web_service.cache.status.login_blocked, 10, what="the node saw it")
    for _ in range(3):
        replay = app.test_client()
        replay.set_cookie("session", stale.value)
        assert replay.get("/me").get_json() == {"username": None, "role": None}
