"""Webhook endpoints from ``MAINTENANCE_WEBHOOK_URLS``: a stable id and a label safe to show.

A URL is a secret in itself (Slack puts its token in the path), so only the
label (scheme, host, port) is ever logged, stored in status or printed.

Payload format, chosen per URL:

* ``slack+https://...`` -- the Slack incoming-webhook body (``text`` + ``blocks``)
  posted to ``https://...``; for Slack-compatible receivers (Mattermost, Rocket.Chat...);
* a URL on ``hooks.slack.com`` -- the Slack body as well;
* any other ``http(s)://`` URL -- the generic JSON envelope (``payloads.envelope``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import ValidationError

SLACK_PREFIX = "slack+"
SLACK_HOSTS = frozenset({"hooks.slack.com"})
_SCHEMES = frozenset({"http", "https"})
SETTING = "MAINTENANCE_WEBHOOK_URLS"


@dataclass(frozen=True)
class Endpoint:
    """One configured receiver."""

    id: str
    label: str
    slack: bool
    url: str = field(repr=False)
    #: ``Authorization`` header value from credentials in the URL (``https://user:pw@host``).
    authorization: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form without the URL."""
        return {"id": self.id, "label": self.label, "format": "slack" if self.slack else "json"}


def endpoint_id(raw: str) -> str:
    """Stable across processes and restarts: the same configured URL, the same id."""
    return hashlib.sha256(raw.strip().encode()).hexdigest()[:16]


def parse_endpoint(raw: str, position: int = 1) -> Endpoint:
    """One configured URL (``ValidationError`` naming its position, never its text)."""
    text = raw.strip()
    slack = text.startswith(SLACK_PREFIX)
    url = text[len(SLACK_PREFIX) :] if slack else text
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in _SCHEMES or not parts.hostname:
        raise ValidationError(
            f"{SETTING}: entry {position} is not an http(s) URL "
            "(use https://host/path or slack+https://host/path)",
            field=SETTING,
        )
    host = parts.hostname
    slack = slack or host in SLACK_HOSTS
    ident = endpoint_id(text)
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    more = "/…" if parts.path not in ("", "/") or parts.query else ""
    label = f"{'slack ' if slack else ''}{parts.scheme}://{netloc}{more} [{ident[:6]}]"
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        url = urlunsplit(parts._replace(netloc=netloc))
    return Endpoint(id=ident, label=label, slack=slack, url=url, authorization=authorization)


def parse_endpoints(urls: Iterable[str]) -> tuple[Endpoint, ...]:
    """Every configured URL, in order, each once."""
    found: dict[str, Endpoint] = {}
    for position, raw in enumerate(urls, start=1):
        endpoint = parse_endpoint(raw, position)
        found.setdefault(endpoint.id, endpoint)
    return tuple(found.values())
