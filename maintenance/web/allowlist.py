"""Allowlists: callers and paths let through maintenance like an administrator.

Three ways in, all on the gate's admin path (``gate._decide``): the caller's IP in
``MAINTENANCE_ALLOWED_IPS`` (addresses or CIDR networks), the request path matching
``MAINTENANCE_ALLOWED_PATHS`` (globs), or a view marked ``@maintenance_exempt``. The
caller then counts as an ordinary (not critical) administrator: the request and the
Celery tasks it publishes pass, an emergency lockdown still refuses it, and every pass
is counted per activation (``AllowlistCounter``) and shown in the admin status.

The caller's IP is the TCP peer's unless that peer is a trusted proxy
(``MAINTENANCE_TRUSTED_PROXIES``): only then is ``X-Forwarded-For`` read, from the
right, skipping further trusted proxies. A client that is not a trusted proxy cannot
claim an allowlisted address by sending the header itself.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from ..redisconn import REDIS_ERRORS, as_text
from .identity import WebIdentity

if TYPE_CHECKING:
    from flask import Flask, Request

    from ..service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.web")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
F = TypeVar("F", bound=Callable[..., Any])

#: The attribute ``maintenance_exempt`` sets on a view function.
EXEMPT_ATTRIBUTE = "_maintenance_exempt"
#: Counters are kept this long after an activation's last pass.
COUNTER_TTL = 30 * 24 * 3600


def maintenance_exempt(view: F) -> F:
    """Mark a Flask view as allowed through maintenance (like an administrator; counted).

    Put it closest to the function (under ``@app.route``) so the registered view
    carries the mark."""
    setattr(view, EXEMPT_ATTRIBUTE, True)
    return view


def _networks(values: Iterable[str] | str | None, key: str) -> tuple[Network, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{key}: {value!r} is not an IP address or CIDR network") from None
    return tuple(out)


def _address(value: str | None) -> Address | None:
    if not value:
        return None
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Allowlist:
    """One app's allowlists (read once at ``init_app``)."""

    networks: tuple[Network, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    path_globs: tuple[str, ...] = ()

    @classmethod
    def from_config(
        cls,
        ips: Iterable[str] | str | None,
        proxies: Iterable[str] | str | None,
        paths: Iterable[str] | None,
    ) -> Allowlist:
        """From the ``MAINTENANCE_ALLOWED_IPS``/``TRUSTED_PROXIES``/``ALLOWED_PATHS`` values;
        a bad address raises ``ValueError`` naming the key."""
        return cls(
            networks=_networks(ips, "MAINTENANCE_ALLOWED_IPS"),
            trusted_proxies=_networks(proxies, "MAINTENANCE_TRUSTED_PROXIES"),
            path_globs=tuple(str(p) for p in paths or ()),
        )

    @cached_property
    def _paths(self) -> re.Pattern[str] | None:
        if not self.path_globs:
            return None
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.path_globs))

    def _trusted(self, address: Address) -> bool:
        return any(address in net for net in self.trusted_proxies)

    def client_ip(self, remote_addr: str | None, forwarded_for: str | None) -> Address | None:
        """The client's address: the peer, or -- only while the peer is a trusted
        proxy -- the next address to the left in ``X-Forwarded-For``."""
        current = _address(remote_addr)
        hops = [h for h in (forwarded_for or "").split(",") if h.strip()]
        while current is not None and hops and self._trusted(current):
            current = _address(hops.pop())
        return current

    def ip_rule(self, address: Address | None) -> str | None:
        """The allowlisted network ``address`` is in, if any."""
        if address is None:
            return None
        for net in self.networks:
            if address.version == net.version and address in net:
                return str(net)
        return None

    def path_rule(self, path: str) -> str | None:
        """The allowlisted path glob ``path`` matches, if any."""
        pattern = self._paths
        if pattern is None or not pattern.fullmatch(path):
            return None
        return next(g for g in self.path_globs if fnmatch.fnmatchcase(path, g))

    def match(self, app: Flask, request: Request) -> tuple[str, str] | None:
        """Why this request is allowlisted -- ``("view", endpoint)``, ``("path", glob)``
        or ``("ip", network)`` -- or None."""
        view = app.view_functions.get(request.endpoint or "")
        if view is not None and getattr(view, EXEMPT_ATTRIBUTE, False):
            return "view", str(request.endpoint)
        rule = self.path_rule(request.path)
        if rule is not None:
            return "path", rule
        if self.networks:
            ip = self.client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"))
            net = self.ip_rule(ip)
            if net is not None:
                return "ip", net
        return None

    def to_dict(self) -> dict[str, Any]:
        """The configuration, for the admin status."""
        return {
            "ips": [str(n) for n in self.networks],
            "trusted_proxies": [str(n) for n in self.trusted_proxies],
            "paths": list(self.path_globs),
        }


def allowlisted_identity(kind: str, rule: str) -> WebIdentity:
    """Whom an allowlisted request acts as: an ordinary (not critical) admin stand-in,
    so it takes the admin path -- the tasks it publishes pass too, an emergency
    lockdown still refuses it."""
    name = f"allowlist:{kind}:{rule}"
    return WebIdentity(
        user={"username": name, "is_admin": True},
        username=name,
        is_admin=True,
        authenticated=False,
        via="allowlist",
    )


class AllowlistCounter:
    """Allowlisted passes per activation and rule, in Redis (``Keys.allowlisted``)."""

    def __init__(self, service: EnhancedMaintenanceModeService) -> None:
        self.service = service

    def count(self, activation_id: str | None, kind: str, rule: str) -> None:
        """One pass through ``kind:rule``; never raises (Redis down: not counted)."""
        key = self.service.keys.allowlisted(activation_id or "none")
        try:
            pipe = self.service.redis.pipeline(transaction=False)
            pipe.hincrby(key, f"{kind}:{rule}", 1)
            pipe.expire(key, COUNTER_TTL)
            pipe.execute()
        except REDIS_ERRORS as exc:
            log.debug("allowlisted pass not counted: %s", exc)

    def read(self, activation_id: str | None) -> dict[str, int]:
        """Passes of one activation by ``kind:rule`` (empty when Redis is down)."""
        try:
            raw = self.service.redis.hgetall(self.service.keys.allowlisted(activation_id or "none"))
        except REDIS_ERRORS:
            return {}
        return {as_text(k): int(v) for k, v in raw.items()}
