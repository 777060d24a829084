"""Bypass links and cookies: one-time link -> signed, expiring cookie that lets one browser
through; tampered, expired or foreign cookies are ignored."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from maintenance import EnhancedMaintenanceModeService
from maintenance.bypass_tokens import create_bypass_link
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
    genuine_but_old = URLSafeTimedSerializer(
        "test-secret", salt="maintenance-bypass-cookie", signer=ThirteenHoursAgo
    ).dumps({"by": "ops"})
    fresh = URLSafeTimedSerializer("test-secret", salt="maintenance-bypass-cookie").dumps(
        {"by": "ops"}
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
