"""CSRF tokens for the panel's HTML forms: a random value kept in the session, handed out
signed and time-limited, checked on every form post together with the request's origin.

The signature ties a token to this app's secret and its age; the session value ties it
to this browser's session, so a token lifted from another session is useless.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Request, session
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ...errors import CsrfError

SESSION_KEY = "_maintenance_admin_csrf"
FIELD = "csrf_token"
_SALT = "maintenance-admin-csrf"


class CsrfProtect:
    """Issues and checks tokens signed with ``secret``."""

    def __init__(self, secret: str, max_age: int) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age = max_age

    def token(self) -> str:
        """A token for this session (the session value is created on first use)."""
        raw = session.get(SESSION_KEY)
        if not isinstance(raw, str):
            raw = session[SESSION_KEY] = secrets.token_urlsafe(24)
        return self.serializer.dumps(raw)

    def check(self, request: Request) -> None:
        """Raise ``CsrfError`` unless the posted token is this session's and fresh."""
        sent = request.form.get(FIELD) or request.headers.get("X-CSRF-Token")
        if not sent:
            raise CsrfError("the form has no CSRF token; reload the page and try again")
        try:
            raw = self.serializer.loads(sent, max_age=self.max_age)
        except SignatureExpired:
            raise CsrfError("the form has expired; reload the page and try again") from None
        except BadSignature:
            raise CsrfError("the form's CSRF token is not valid") from None
        expected = session.get(SESSION_KEY)
        if not isinstance(expected, str) or not isinstance(raw, str):
            raise CsrfError("the form does not belong to this session; reload the page")
        if not hmac.compare_digest(raw.encode(), expected.encode()):
            raise CsrfError("the form does not belong to this session; reload the page")
