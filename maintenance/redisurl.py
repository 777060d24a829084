"""Redis URLs the control plane accepts: one server, or a Sentinel-managed master.

* ``redis://``, ``rediss://``, ``unix://``: one server (redis-py's forms).
* ``redis+sentinel://[[user]:password@]host1:26379,host2:26379/mymaster[/db]``: the
  master Sentinel names ``mymaster``, asked of any of the listed sentinels (port
  26379 when left out). ``password`` is the data nodes' password, as in Celery's
  URLs; a password of the sentinels themselves goes in ``?sentinel_password=``.
* Celery's (kombu's) spelling, ``sentinel://[:password@]host1:26379;sentinel://host2:26379/0``,
  names no master: it comes from ``MAINTENANCE_REDIS_SENTINEL_MASTER`` (Celery's
  ``master_name`` transport option). ``canonical_redis_url`` turns it into the form above.

Pure parsing: no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from .errors import ValidationError

SENTINEL_SCHEME = "redis+sentinel"
CELERY_SENTINEL_SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379
_FIELD = "REDIS_URL"


@dataclass(frozen=True)
class SentinelURL:
    """Where the sentinels are and which master of theirs the control plane uses."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)

    def to_url(self) -> str:
        """The ``redis+sentinel://`` form (what every client factory is handed)."""
        userinfo = ""
        if self.password is not None:
            userinfo = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        elif self.username:
            userinfo = f"{quote(self.username, safe='')}@"
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        query = (
            "?" + urlencode({"sentinel_password": self.sentinel_password})
            if self.sentinel_password
            else ""
        )
        path = f"{quote(self.service, safe='')}/{self.db}"
        return f"{SENTINEL_SCHEME}://{userinfo}{hosts}/{path}{query}"

    def celery_config(self) -> tuple[str, dict[str, Any]]:
        """Celery's spelling of this master: a broker/backend URL and its transport options."""
        userinfo = ""
        if self.password is not None:
            userinfo = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        url = ";".join(
            f"{CELERY_SENTINEL_SCHEME}://{userinfo}{host}:{port}/{self.db}"
            for host, port in self.sentinels
        )
        options: dict[str, Any] = {"master_name": self.service}
        if self.sentinel_password:
            options["sentinel_kwargs"] = {"password": self.sentinel_password}
        return url, options


def is_sentinel_url(url: str) -> bool:
    """Whether ``url`` names a Sentinel-managed master (either spelling)."""
    scheme = url.split("://", 1)[0].lower()
    return scheme in (SENTINEL_SCHEME, CELERY_SENTINEL_SCHEME)


def parse_sentinel_url(url: str, master: str | None = None) -> SentinelURL:
    """Parse either sentinel spelling; ``master`` names the master for Celery's spelling.

    Raises ``ValidationError`` saying what is wrong.
    """
    scheme = url.split("://", 1)[0].lower()
    if scheme == SENTINEL_SCHEME:
        return _parse_one_url(url)
    if scheme == CELERY_SENTINEL_SCHEME:
        return _parse_celery_url(url, master)
    raise ValidationError(f"{_FIELD} is not a Sentinel URL: {redact(url)}", field=_FIELD)


def canonical_redis_url(url: str, master: str | None = None) -> str:
    """``url`` as the client factory takes it: Celery's sentinel spelling rewritten,
    sentinel URLs validated, single-server URLs unchanged."""
    if is_sentinel_url(url):
        return parse_sentinel_url(url, master).to_url()
    if master:
        raise ValidationError(
            "MAINTENANCE_REDIS_SENTINEL_MASTER is set but REDIS_URL names one server, "
            f"not sentinels: {redact(url)}",
            field="MAINTENANCE_REDIS_SENTINEL_MASTER",
        )
    return url


def redact(url: str) -> str:
    """``url`` with every password (each host of a ``;`` list, ``sentinel_password``)
    replaced by ``***``: safe to print or log."""
    return ";".join(_redact_one(chunk) for chunk in url.split(";"))


def _redact_one(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    if "sentinel_password=" in tail:
        path, _, query = tail.partition("?")
        pairs = [
            "sentinel_password=***" if p.startswith("sentinel_password=") else p
            for p in query.split("&")
        ]
        tail = f"{path}?{'&'.join(pairs)}"
    return f"{scheme}://{netloc}{tail}"


def _parse_one_url(url: str) -> SentinelURL:
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo)
    sentinels = tuple(_host_port(h, url) for h in hosts.split(",") if h)
    if not sentinels:
        raise ValidationError(f"{_FIELD} names no sentinel: {redact(url)}", field=_FIELD)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments or len(segments) > 2:
        raise ValidationError(
            f"{_FIELD} must end in /<master name>[/<db>], got {redact(url)}", field=_FIELD
        )
    query = parse_qs(parts.query)
    unknown = set(query) - {"sentinel_password"}
    if unknown:
        raise ValidationError(
            f"{_FIELD} has unknown options {sorted(unknown)} (only sentinel_password)",
            field=_FIELD,
        )
    return SentinelURL(
        sentinels=sentinels,
        service=segments[0],
        db=_db(segments[1] if len(segments) > 1 else "0", url),
        username=username,
        password=password,
        sentinel_password=query["sentinel_password"][0] if "sentinel_password" in query else None,
    )


def _parse_celery_url(url: str, master: str | None) -> SentinelURL:
    if not master:
        raise ValidationError(
            "a sentinel:// REDIS_URL (Celery's spelling) needs the master's name in "
            "MAINTENANCE_REDIS_SENTINEL_MASTER, or use "
            "redis+sentinel://host1:26379,host2:26379/<master>/<db>",
            field="MAINTENANCE_REDIS_SENTINEL_MASTER",
        )
    sentinels: list[tuple[str, int]] = []
    username = password = None
    db = 0
    for chunk in (c.strip() for c in url.split(";") if c.strip()):
        if not chunk.lower().startswith(f"{CELERY_SENTINEL_SCHEME}://"):
            raise ValidationError(
                f"{_FIELD} mixes sentinel:// with other URLs: {redact(url)}", field=_FIELD
            )
        parts = urlsplit(chunk)
        userinfo, _, host = parts.netloc.rpartition("@")
        if userinfo and password is None:  # Celery takes the first URL's credentials
            username, password = _credentials(userinfo)
        sentinels.append(_host_port(host, url))
        if parts.path.strip("/"):
            db = _db(parts.path.strip("/"), url)
    return SentinelURL(
        sentinels=tuple(sentinels),
        service=master,
        db=db,
        username=username,
        password=password,
    )


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _host_port(text: str, url: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host or (colon and not port.isdigit()):
        raise ValidationError(
            f"{_FIELD} has a bad sentinel address {text!r}: {redact(url)}", field=_FIELD
        )
    return host, int(port) if port else DEFAULT_SENTINEL_PORT


def _db(text: str, url: str) -> int:
    if not text.isdigit():
        raise ValidationError(
            f"{_FIELD} database must be a number, got {text!r}: {redact(url)}", field=_FIELD
        )
    return int(text)
