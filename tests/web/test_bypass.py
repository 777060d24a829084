"""Bypass links and cookies: one-time link -> signed, expiring cookie that lets one browser
through; tampered, expired or foreign cookies are ignored."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from maintenance import EnhancedMaintenanceModeService
from maintenance.bypass_tokens import create_bypass_link
from tests.web.conftest import build_app, login
from tests.web.test_api import SAME_ORIGIN
from tests.web.test_gate import enable

COOKIE = "maintenance_bypass"


def _path(link: str) -> str:
    return urlsplit(link).path


def test_a_bypass_link_sets_a_cookie_that_lets_that_browser_through(
    app: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator)
    tester, stranger = app.test_client(), app.test_client()
    link = create_bypass_link(operator, "ops-alice")
    response = tester.get(_path(link) + "?next=/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    set_cookie = response.headers["Set-Cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie
    assert "Max-Age=43200" in set_cookie
    passed = tester.post("/jobs")
    assert passed.status_code == 200
    # The tester's requests count as an admin stand-in, so Celery publishes pass too.
    assert passed.get_json()["bypass"] == "bypass:ops-alice"
    assert stranger.post("/jobs").status_code == 503
    kinds = [e.kind for e in operator.history(5)]
    assert "bypass_link_redeemed" in kinds


def test_a_bypass_link_works_once(app: Flask, operator: EnhancedMaintenanceModeService) -> None:
    enable(operator)
    link = create_bypass_link(operator, "ops")
    assert app.test_client().get(_path(link)).status_code == 302
    second = app.test_client().get(_path(link))
    assert second.status_code == 403
    assert "not valid" in second.get_data(as_text=True)


def test_a_tampered_cookie_is_ignored(app: Flask, operator: EnhancedMaintenanceModeService) -> None:
    enable(operator)
    client = app.test_client()
    client.get(_path(create_bypass_link(operator, "ops")))
    value = client.get_cookie(COOKIE).value
    assert client.post("/jobs").status_code == 200
    flipped = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    client.set_cookie(COOKIE, flipped)
    assert client.post("/jobs").status_code == 503
    forged = URLSafeTimedSerializer("guessed-secret", salt="maintenance-bypass-cookie")
    client.set_cookie(COOKIE, forged.dumps({"by": "mallory"}))
    assert client.post("/jobs").status_code == 503
    client.set_cookie(COOKIE, "garbage")
    assert client.post("/jobs").status_code == 503


def test_an_expired_cookie_is_ignored(app: Flask, operator: EnhancedMaintenanceModeService) -> None:
    class ThirteenHoursAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 13 * 3600

    enable(operator)
    window = operator.status.activation_id
    genuine_but_old = URLSafeTimedSerializer(
        "test-secret", salt="maintenance-bypass-cookie", signer=ThirteenHoursAgo
    ).dumps({"by": "ops", "w": window})
    fresh = URLSafeTimedSerializer("test-secret", salt="maintenance-bypass-cookie").dumps(
        {"by": "ops", "w": window}
    )
    client = app.test_client()
    client.set_cookie(COOKIE, fresh)
    assert client.post("/jobs").status_code == 200  # same secret, in date: accepted
    client.set_cookie(COOKIE, genuine_but_old)
    assert client.post("/jobs").status_code == 503


def test_links_signed_with_another_secret_or_garbled_are_refused(
    app: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator)
    foreign = create_bypass_link(operator, "ops", secret="someone-elses-secret")
    assert app.test_client().get(_path(foreign)).status_code == 403
    assert app.test_client().get("/_maintenance/bypass/%00%ff").status_code == 403


def test_the_redirect_never_leaves_the_site(
    app: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)"):
        link = create_bypass_link(operator, "ops")
        response = app.test_client().get(_path(link), query_string={"next": target})
        assert response.headers["Location"] == "/"


def test_an_emergency_lockdown_still_refuses_bypass_browsers(
    app: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, mode="emergency", critical_admin_only=True)
    client = app.test_client()
    client.get(_path(create_bypass_link(operator, "ops")))
    assert client.post("/jobs").status_code == 503


def _aged_link(operator: EnhancedMaintenanceModeService, ttl: int, age: int) -> str:
    """The path of a genuine link issued with lifetime ``ttl``, signed ``age`` seconds ago."""
    from maintenance.bypass_tokens import BypassNonces

    class Aged(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    nonce = BypassNonces(operator.redis, operator.keys).issue("ops", ttl)
    token = URLSafeTimedSerializer(
        "test-secret", salt="maintenance-bypass-link", signer=Aged
    ).dumps({"n": nonce, "by": "ops", "ttl": ttl})
    return f"/_maintenance/bypass/{token}"


def test_a_link_lives_exactly_as_long_as_the_api_answered(
    app: Flask, admin_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator)
    answer = admin_client.post(
        "/api/maintenance/bypass-link", json={"ttl": 86400}, headers=SAME_ORIGIN
    ).get_json()
    assert answer["expires_in"] == 86400
    token = urlsplit(answer["url"]).path.rsplit("/", 1)[1]
    data = URLSafeTimedSerializer("test-secret", salt="maintenance-bypass-link").loads(token)
    assert data["ttl"] == 86400
    assert 86000 < operator.redis.ttl(operator.keys.bypass_token(data["n"])) <= 86400
    # Past MAINTENANCE_BYPASS_LINK_TTL (3600 s) a one-day link still works...
    assert app.test_client().get(_aged_link(operator, 86400, 2 * 3600)).status_code == 302
    # ... and a one-minute link dies after its minute, whatever the default says.
    assert app.test_client().get(_aged_link(operator, 60, 90)).status_code == 403
    # Past the documented maximum nothing is issued.
    too_long = admin_client.post(
        "/api/maintenance/bypass-link", json={"ttl": 86401}, headers=SAME_ORIGIN
    )
    assert too_long.status_code == 400 and too_long.get_json()["field"] == "ttl"


def test_links_are_built_from_the_base_url_never_the_host_header(
    app: Flask,
    admin_client: FlaskClient,
    make_service: Callable[..., EnhancedMaintenanceModeService],
) -> None:
    session = admin_client.get_cookie("session")
    assert session is not None
    evil = {
        "Host": "evil.example",
        "Origin": "http://evil.example",
        "Cookie": f"session={session.value}",
    }
    raw = app.test_client(use_cookies=False)  # sends the admin's cookie to "evil.example"
    answer = raw.post("/api/maintenance/bypass-link", json={}, headers=evil)
    assert answer.status_code == 200
    assert answer.get_json()["url"].startswith("http://localhost/_maintenance/bypass/")
    assert "evil" not in answer.get_json()["url"]
    # Without MAINTENANCE_BASE_URL the API refuses to build a link at all.
    unset = build_app(make_service(kind="web", base_url=None))
    client = login(unset.test_client(), "root", "admin")
    refused = client.post("/api/maintenance/bypass-link", json={}, headers=SAME_ORIGIN)
    assert refused.status_code == 400 and refused.is_json
    assert refused.get_json()["field"] == "base_url"
    assert "MAINTENANCE_BASE_URL" in refused.get_json()["message"]


def test_a_cookie_passes_only_in_the_window_it_was_issued_in(
    app: Flask,
    operator: EnhancedMaintenanceModeService,
    web_service: EnhancedMaintenanceModeService,
) -> None:
    enable(operator)
    tester = app.test_client()
    assert tester.get(_path(create_bypass_link(operator, "ops"))).status_code == 302
    assert tester.post("/jobs").status_code == 200
    enable(operator, reason="still the same window")  # a change, same window
    assert tester.post("/jobs").status_code == 200
    operator.disable_maintenance("ops", wait=5)
    enable(operator, reason="the next window")
    assert web_service.status.is_active
    assert tester.post("/jobs").status_code == 503
