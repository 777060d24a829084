"""One-time bypass links: let one browser through maintenance to test the site.

``create_bypass_link`` signs a token (itsdangerous) carrying its own lifetime and records
its nonce in Redis for that long (``BypassNonces``, the owner of those keys);
``redeem_bypass_token`` accepts it once, within that lifetime. The expiry a caller is
told is the expiry enforced, never more than ``MAX_LINK_TTL``. Links are built only from
the configured public URL (``MAINTENANCE_BASE_URL``), never from a request's ``Host``.
The web side then sets a signed cookie valid for the maintenance window it was
issued in (``maintenance.web.bypass_cookie``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

from .errors import ValidationError

if TYPE_CHECKING:
    import redis

    from .keys import Keys
    from .service import EnhancedMaintenanceModeService

BYPASS_PATH = "/_maintenance/bypass/"
#: Seconds a link stays valid: by default, and the range an administrator may ask for
#: (the documented maximum: one day).
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


def check_ttl(ttl: object) -> int:
    """A link lifetime ``MIN_LINK_TTL..MAX_LINK_TTL`` seconds."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_LINK_TTL <= ttl <= MAX_LINK_TTL:
        raise ValidationError(f"ttl must be {MIN_LINK_TTL}..{MAX_LINK_TTL} seconds", field="ttl")
    return ttl


def check_base_url(base_url: str | None) -> str:
    """The configured public URL of the web app (``http(s)://host[:port][/path]``)."""
    if not base_url:
        raise ValidationError(
            "bypass links need MAINTENANCE_BASE_URL (the site's public URL) to be set; "
            "they are never built from a request's Host header",
            field="base_url",
        )
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValidationError(
            f"MAINTENANCE_BASE_URL {base_url!r} is not an http(s) URL", field="base_url"
        )
    return base_url.rstrip("/")


@dataclass(frozen=True)
class LinkSigner:
    """Everything a link needs, checked before anything is written: the secret, the
    public URL and the lifetime."""

    serializer: URLSafeTimedSerializer
    base_url: str
    ttl: int


def link_signer(
    service: EnhancedMaintenanceModeService,
    *,
    ttl: int = LINK_TTL,
    secret: str | None = None,
    base_url: str | None = None,
) -> LinkSigner:
    """A ``LinkSigner``, or ``ValidationError`` naming what is missing (check it before
    changing anything when a link is to follow)."""
    return LinkSigner(
        _serializer(secret or service.settings.secret_key),
        check_base_url(base_url or service.settings.base_url),
        check_ttl(ttl),
    )


def create_bypass_link(
    service: EnhancedMaintenanceModeService,
    actor: str,
    *,
    ttl: int = LINK_TTL,
    secret: str | None = None,
    base_url: str | None = None,
) -> str:
    """A URL that, visited once within ``ttl`` seconds, lets that browser through."""
    signer = link_signer(service, ttl=ttl, secret=secret, base_url=base_url)
    nonce = BypassNonces(service.redis, service.keys).issue(actor, signer.ttl)
    token = signer.serializer.dumps({"n": nonce, "by": actor, "ttl": signer.ttl})
    service.record_event("bypass_link_created", actor=actor, details={"ttl_seconds": signer.ttl})
    return f"{signer.base_url}{BYPASS_PATH}{token}"


def redeem_bypass_token(
    service: EnhancedMaintenanceModeService,
    token: str,
    *,
    secret: str | None = None,
) -> str | None:
    """The actor who created ``token`` if it is genuine, unexpired (by the lifetime it was
    issued with) and unused; else None."""
    try:
        serializer = _serializer(secret or service.settings.secret_key)
        data = serializer.loads(token, max_age=MAX_LINK_TTL)
    except (BadSignature, ValidationError):
        return None
    if not isinstance(data, dict) or "n" not in data:
        return None
    ttl = data.get("ttl", LINK_TTL)
    if not isinstance(ttl, int) or not MIN_LINK_TTL <= ttl <= MAX_LINK_TTL:
        return None
    try:
        serializer.loads(token, max_age=ttl)
    except BadSignature:  # SignatureExpired: older than its own lifetime
        return None
    return BypassNonces(service.redis, service.keys).redeem(str(data["n"]))
