"""Outcome messages carried in the redirect after a form post, signed, not in the session.

A cookie session written by the form's response can be overwritten by a
concurrent request of the same page (the dashboard polls and streams while
the form posts), so a message stored there may vanish; the redirect's URL
cannot be raced.
"""

from __future__ import annotations

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

PARAM = "notice"
MAX_AGE = 120  # seconds: a bookmarked panel URL does not replay an old message
_SALT = "maintenance-admin-notice"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.secret_key), salt=_SALT)


def pack(messages: list[tuple[str, str]]) -> str:
    """Signed form of ``[(category, message), ...]`` for the redirect's query string."""
    return _serializer().dumps([list(m) for m in messages])


def unpack() -> list[tuple[str, str]]:
    """The messages of this request's ``notice`` parameter; [] if absent, forged or old."""
    raw = request.args.get(PARAM)
    if not raw:
        return []
    try:
        data = _serializer().loads(raw, max_age=MAX_AGE)
    except BadSignature:
        return []
    return [(str(c), str(m)) for c, m in data if isinstance(c, str) and isinstance(m, str)]
