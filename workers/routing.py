"""Which broker a job came from, so a recovery republishes it there and nowhere else.

A held-back job's record keeps ``broker`` (in its options, next to ``exchange`` and
``routing_key``; its ``queue`` is a column): the identity of the broker the worker that
held it back consumed from -- transport, host, port, virtual host or database, and the
key prefix (``global_keyprefix``) -- never its credentials. A recovery publishes a record
only through a Celery app whose broker has the same identity; the others are left for
a recovery that has one (``CELERY_APP``, ``-A``), never published elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from maintenance.store.jobs import JobRecord

from .records import BROKER

#: The setting (or option) that names the Celery app a command publishes with.
APP_SETTING = "CELERY_APP"
_ATTRIBUTE = "_maintenance_broker_identity"
_LOCAL = {"localhost", "127.0.0.1", "::1", ""}
_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "pyamqp": 5672}


def broker_of(app: Any) -> str | None:
    """The identity of the broker ``app`` publishes to (``redis://127.0.0.1:6379/1``,
    ``+ prefix`` when keys are prefixed); None when it cannot be told."""
    if app is None:
        return None
    cached = getattr(app, _ATTRIBUTE, None)
    if cached is not None:
        return str(cached)
    try:
        conn = app.connection_for_write()
        transport = str(conn.transport_cls or "").split(":")[0].split(".")[-1] or "?"
        if transport == "pyamqp":
            transport = "amqp"
        host = str(conn.hostname or "")
        host = "127.0.0.1" if host in _LOCAL else host
        port = conn.port or _DEFAULT_PORTS.get(transport, 0)
        vhost = str(conn.virtual_host or "").strip("/")
        if transport in ("redis", "rediss"):
            vhost = vhost or "0"
        options = app.conf.broker_transport_options or {}
        prefix = options.get("global_keyprefix") or ""
    except Exception:
        return None
    identity = f"{transport}://{host}:{port}/{vhost}" + (f" prefix={prefix}" if prefix else "")
    with contextlib.suppress(AttributeError):
        setattr(app, _ATTRIBUTE, identity)
    return identity


def elsewhere(app: Any, records: Iterable[JobRecord]) -> list[JobRecord]:
    """Those of ``records`` that came from a broker other than ``app``'s (records that do
    not say where they came from are taken to be from here)."""
    here = broker_of(app)
    return [
        r for r in records if (came := r.options.get(BROKER)) and here is not None and came != here
    ]


def refusal(app: Any, records: list[JobRecord]) -> str:
    """One line: why these records are not published by ``app``, and the setting to set."""
    brokers = sorted({str(r.options.get(BROKER)) for r in records})
    return (
        f"{len(records)} held-back job(s) came from broker {', '.join(brokers)}, but this "
        f"process's Celery app publishes to {broker_of(app)}; set {APP_SETTING} (or -A) to "
        "the Celery app those workers run, then run `maintenance recover`"
    )
