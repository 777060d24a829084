"""One-time bypass links: let one browser through maintenance to test the site.

``create_bypass_link`` signs a token (itsdangerous) and records its nonce in
Redis with a TTL; ``redeem_bypass_token`` accepts it once. The web side then
sets a signed, expiring cookie (``maintenance.web.bypass_cookie``).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, URLSafeTimedSerializer

from .errors import ValidationError

if TYPE_CHECKING:
    from .service import EnhancedMaintenanceModeService

BYPASS_PATH = "/_maintenance/bypass/"
_SALT = "maintenance-bypass-link"


def _serializer(secret: str | None) -> URLSafeTimedSerializer:
    if not secret:
        raise ValidationError(
            "bypass links need MAINTENANCE_SECRET_KEY (or the Flask SECRET_KEY) to be set",
            field="secret_key",
        )
    return URLSafeTimedSerializer(secret, salt=_SALT)


def create_bypass_link(
    service: EnhancedMaintenanceModeService,
    actor: str,
    *,
    ttl: int = 3600,
    secret: str | None = None,
    base_url: str | None = None,
) -> str:
    """A URL that, visited once within ``ttl`` seconds, lets that browser through."""
    nonce = secrets.token_urlsafe(12)
    token = _serializer(secret or service.settings.secret_key).dumps({"n": nonce, "by": actor})
    service.redis.set(service.keys.bypass_token(nonce), actor, ex=ttl)
    service.record_event("bypass_link_created", actor=actor, details={"ttl_seconds": ttl})
    return f"{(base_url or service.settings.base_url).rstrip('/')}{BYPASS_PATH}{token}"


def redeem_bypass_token(
    service: EnhancedMaintenanceModeService,
    token: str,
    *,
    ttl: int = 3600,
    secret: str | None = None,
) -> str | None:
    """The actor who created ``token`` if it is genuine, unexpired and unused; else None."""
    try:
        data = _serializer(secret or service.settings.secret_key).loads(token, max_age=ttl)
    except (BadSignature, ValidationError):
        return None
    if not isinstance(data, dict) or "n" not in data:
        return None
    actor = service.redis.getdel(service.keys.bypass_token(str(data["n"])))
    if actor is None:
        return None
    return actor.decode() if isinstance(actor, bytes) else str(actor)
