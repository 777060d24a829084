"""A one-time bypass link for testing the site during maintenance: the ``bypass_link``
command (the link itself, its expiry and its URL are ``bypass_tokens``')."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..bypass_tokens import create_bypass_link
from .actor import Actor, authorize
from .outcome import Outcome

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService


def bypass_link(
    service: EnhancedMaintenanceModeService,
    actor: Actor,
    *,
    ttl: int,
    secret: str | None = None,
    base_url: str | None = None,
) -> Outcome:
    """Issue a link that lets one browser through, once, within ``ttl`` seconds."""
    authorize(service, actor)
    url = create_bypass_link(service, actor.name, ttl=ttl, secret=secret, base_url=base_url)
    return Outcome(
        action="bypass_link",
        committed=True,
        version=None,
        summary=f"Bypass link issued (one use, {ttl} s).",
        data={"url": url, "expires_in": ttl},
        value=url,
    )
