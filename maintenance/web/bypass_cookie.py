"""The bypass cookie: a one-time link (``maintenance enable --secret``) becomes a signed,
expiring cookie that lets one browser through maintenance to test the site, during the
maintenance window (activation) it was issued in only: once maintenance ends or a new
window starts, the cookie no longer passes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Request, Response, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..bypass_tokens import redeem_bypass_token
from .identity import WebIdentity

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService
    from .config import WebConfig

_SALT = "maintenance-bypass-cookie"


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


def cookie_value(secret: str, actor: str, window: str | None) -> str:
    """A signed, timestamped cookie value naming the admin who issued the link and the
    maintenance window (activation id) it is valid for."""
    return _serializer(secret).dumps({"by": actor, "w": window})


def read_cookie(req: Request, config: WebConfig, window: str | None) -> str | None:
    """The issuing admin when the request carries a genuine, unexpired bypass cookie
    issued in maintenance window ``window`` (the current activation id).

    Tampered, expired, foreign or other windows' cookies are ignored (None), never an error.
    """
    raw = req.cookies.get(config.bypass_cookie)
    if not raw or not config.secret_key:
        return None
    try:
        data = _serializer(config.secret_key).loads(raw, max_age=config.bypass_max_age)
    except BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(data, dict) or not isinstance(data.get("by"), str):
        return None
    if window is None or data.get("w") != window:
        return None
    return str(data["by"])


def _window(service: EnhancedMaintenanceModeService) -> str | None:
    """The maintenance window a cookie issued now belongs to (None: maintenance is off)."""
    status = service.status
    return status.activation_id if status.is_active else None


def bypass_identity(actor: str) -> WebIdentity:
    """Whom a bypass-cookie browser acts as: an admin stand-in named after the issuer.

    It counts as an (ordinary, not critical) admin, so work the tester starts
    also passes the Celery publish gate; an emergency lockdown still refuses it.
    """
    return WebIdentity(
        user={"username": f"bypass:{actor}", "is_admin": True},
        username=f"bypass:{actor}",
        is_admin=True,
        authenticated=True,
        via="bypass",
    )


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: the link must not become an open redirect.
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


def redeem_view(
    service: EnhancedMaintenanceModeService, config: WebConfig, token: str
) -> Response | Any:
    """``GET <bypass path>``: redeem the one-time token, set the cookie, go to the site."""
    actor = redeem_bypass_token(service, token, secret=config.secret_key)
    if actor is None:
        html = render_template("maintenance/bypass_invalid.html")
        return Response(html, status=403, headers={"Cache-Control": "no-store"})
    response = redirect(_safe_next(request.args.get("next")))
    response.headers["Cache-Control"] = "no-store"
    assert config.secret_key  # redeem_bypass_token returned an actor, so there is a secret
    response.set_cookie(
        config.bypass_cookie,
        cookie_value(config.secret_key, actor, _window(service)),
        max_age=config.bypass_max_age,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure if config.bypass_secure is None else bool(config.bypass_secure),
    )
    service.record_event(
        "bypass_link_redeemed",
        actor=actor,
        details={"remote_addr": request.remote_addr, "cookie_max_age": config.bypass_max_age},
    )
    return response
