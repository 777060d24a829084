"""The signed-out notice is said once: a page that told the user marks it told, so the
notice a late answer (the page's favicon, turned away too) sets again is not shown on
the next page. Real Flask app and service; the browser test covers the real race."""

from __future__ import annotations

from collections.abc import Callable

from maintenance import EnhancedMaintenanceModeService
from maintenance.web.session_manager import SIGNED_OUT_COOKIE, SIGNED_OUT_TOLD

from .app import build_app

CODE = "1"  # "logins are blocked"


def test_the_notice_is_shown_once_then_not_again_when_a_late_answer_sets_it_again(
    make_service: Callable[..., EnhancedMaintenanceModeService],
) -> None:
    app = build_app(make_service(kind="web").start())
    client = app.test_client()
    client.set_cookie(SIGNED_OUT_COOKIE, CODE)
    first = client.get("/signin")
    assert "You were signed out" in first.get_data(as_text=True)
    assert client.get_cookie(SIGNED_OUT_COOKIE) is None  # said: cleared
    assert client.get_cookie(SIGNED_OUT_TOLD) is not None
    client.set_cookie(SIGNED_OUT_COOKIE, CODE)  # the favicon's answer, arriving later
    again = client.get("/signin")
    assert "You were signed out" not in again.get_data(as_text=True)
    assert client.get_cookie(SIGNED_OUT_COOKIE) is None


def test_without_a_page_that_told_them_the_notice_is_shown(
    make_service: Callable[..., EnhancedMaintenanceModeService],
) -> None:
    client = build_app(make_service(kind="web").start()).test_client()
    client.set_cookie(SIGNED_OUT_COOKIE, CODE)
    assert "You were signed out" in client.get("/signin").get_data(as_text=True)
