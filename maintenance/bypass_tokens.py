"""One-time bypass links: let one browser through maintenance to test the site.

``create_bypass_link`` signs a token (itsdangerous) and records its nonce in
Redis with a TTL (``BypassNonces``, the owner of those keys); ``redeem_bypass_token``
accepts it once. The web side then sets a signed, expiring cookie
(``maintenance.web.bypass_cookie``).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, URLSafeTimedSerializer

from .errors import ValidationError

if TYPE_CHECKING:
    import redis

    from .keys import Keys
    from .service import EnhancedMaintenanceModeService

BYPASS_PATH = "/_maintenance/bypass/"
#: Seconds a link stays valid: by default, and the range an administrator may ask for.
LINK_TTL = 3600
MIN_LINK_TTL, MAX_LINK_TTL = 60, 86400
_SALT = "maintenance-bypass-link"


class BypassNonces:
    """The unused nonces of bypass links, each under its own key with the link's TTL."""

    def __init__(self, redis: redis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    def issue(self, actor: str, ttl: int) -> str:
        """A new nonce, redeemable once within ``ttl`` seconds, naming ``actor``."""
        nonce = secrets.token_urlsafe(12)
        self.redis.set(self.keys.bypass_token(nonce), actor, ex=ttl)
        return nonce

    def redeem(self, nonce: str) -> str | None:
        """The actor of ``nonce`` if it is still unused (it is used up now), else None."""
        actor = self.redis.getdel(self.keys.bypass_token(nonce))
        if actor is None:
            return None
        return actor.decode() if isinstance(actor, bytes) else str(actor)


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
    ttl: int = LINK_TTL,
    secret: str | None = None,
    base_url: str | None = None,
) -> str:
    """A URL that, visited once within ``ttl`` seconds, lets that browser through."""
    serializer = _serializer(secret or service.settings.secret_key)
    nonce = BypassNonces(service.redis, service.keys).issue(actor, ttl)
    token = serializer.dumps({"n": nonce, "by": actor})
    service.record_event("bypass_link_created", actor=actor, details={"ttl_seconds": ttl})
    return f"{(base_url or service.settings.base_url).rstrip('/')}{BYPASS_PATH}{token}"


def redeem_bypass_token(
    service: EnhancedMaintenanceModeService,
    token: str,
    *,
    ttl: int = LINK_TTL,
    secret: str | None = None,
) -> str | None:
    """The actor who created ``token`` if it is genuine, unexpired and unused; else None."""
    try:
        data = _serializer(secret or service.settings.secret_key).loads(token, max_age=ttl)
    except (BadSignature, ValidationError):
        return None
    if not isinstance(data, dict) or "n" not in data:
        return None
    return BypassNonces(service.redis, service.keys).redeem(str(data["n"]))
