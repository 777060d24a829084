"""Who may see the panel (administrators, decided exactly as the request gate decides) and
the security headers every panel response carries."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flask import Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from ...errors import ApiError
from ..guards import error_response

if TYPE_CHECKING:
    from ..identity import WebIdentity
    from ..state import WebState

#: Scripts, styles and requests only from this site; nothing inline, no framing.
PANEL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
#: Stored reports are standalone pages with an inline stylesheet and no scripts.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
JSON_ENDPOINTS = frozenset({"check", "data", "status"})


def refuse(who: WebIdentity, login_url: str | None, endpoint: str) -> BaseResponse:
    """401/redirect for anonymous callers, 403 for non-admins; never any panel content."""
    wants_json = endpoint in JSON_ENDPOINTS
    if not who.authenticated:
        if wants_json:
            return error_response(ApiError(401, "unauthorized", "log in as an admin"))
        if login_url:
            sep = "&" if "?" in login_url else "?"
            return redirect(f"{login_url}{sep}{urlencode({'next': request.full_path})}", 302)
        body = render_template("maintenance_admin/denied.html", status=401)
        return Response(body, 401, mimetype="text/html")
    if wants_json:
        return error_response(ApiError(403, "forbidden", "administrators only"))
    body = render_template("maintenance_admin/denied.html", status=403)
    return Response(body, 403, mimetype="text/html")


def require_admin(web: WebState, login_url: str | None) -> tuple[WebIdentity, BaseResponse | None]:
    """The caller, and the refusal to send instead of the view unless they are an admin."""
    who = web.identity()
    endpoint = (request.endpoint or "").rpartition(".")[2]
    if who.authenticated and who.is_admin:
        return who, None
    return who, refuse(who, login_url, endpoint)


def secure_headers(response: Response) -> Response:
    """Never cached, never framed, no sniffing; a strict CSP unless the view set one."""
    if (request.endpoint or "").endswith(".static"):
        return response
    response.headers.setdefault("Content-Security-Policy", PANEL_CSP)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response
