"""The notification outbox (``maintenance_notifications``): written with the event, claimed
by lease, marked delivered or retried.

``enqueue_in`` runs inside the transaction that appends the event-log entry, so
a notification exists exactly when its event does. Deliverers on any number of
nodes claim due rows with one conditional ``UPDATE`` (a lease token and expiry):
two never hold the same row at once, and a crashed deliverer's rows become due
again when its lease runs out. Delivery is at least once; the idempotency key
(``key``) lets receivers drop the duplicates a crash can cause.

Which endpoints an event goes to is known per SQLAlchemy engine: the service
registers its ``MAINTENANCE_WEBHOOK_URLS`` for the engine it writes through.
"""

from __future__ import annotations

import os
import threading
import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, event, func, insert, or_, select, update

from ..domain.history import MaintenanceEvent
from ..domain.status import utcnow
from ..store import schema
from ..store.database import Database
from .endpoints import Endpoint
from .kinds import notification_type
from .payloads import encode, envelope

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"  # given up on: retried for MAINTENANCE_WEBHOOK_RETRY_FOR
STATES = (PENDING, DELIVERED, FAILED)
MAX_ERROR = 500
_FLAG = "maintenance_outbox_written"

_table = schema.notifications
_endpoints: weakref.WeakKeyDictionary[Engine, tuple[Endpoint, ...]] = weakref.WeakKeyDictionary()

#: Set when a transaction that wrote notifications commits (wakes this process's deliverer).
committed = threading.Event()


def _fresh_after_fork() -> None:
    # A thread waiting on the parent's event at fork time may have left its lock taken.
    global committed
    committed = threading.Event()


os.register_at_fork(after_in_child=_fresh_after_fork)


def _on_commit(conn: Connection) -> None:
    if conn.info.pop(_FLAG, False):
        committed.set()


def _on_rollback(conn: Connection) -> None:
    conn.info.pop(_FLAG, None)


def register(engine: Engine, endpoints: Sequence[Endpoint]) -> None:
    """Events written through ``engine`` are announced to ``endpoints`` from now on."""
    _endpoints[engine] = tuple(endpoints)
    if endpoints and not event.contains(engine, "commit", _on_commit):
        event.listen(engine, "commit", _on_commit)
        event.listen(engine, "rollback", _on_rollback)


def endpoints_for(engine: Engine) -> tuple[Endpoint, ...]:
    """The endpoints registered for ``engine`` (empty: nothing is announced)."""
    return _endpoints.get(engine, ())


def enqueue_in(conn: Connection, event_: MaintenanceEvent, event_id: int | None) -> int:
    """One row per endpoint for an announced event, inside the caller's transaction."""
    endpoints = _endpoints.get(conn.engine)
    if not endpoints:
        return 0
    kind = notification_type(event_)
    if kind is None:
        return 0
    now = utcnow()
    rows = []
    for endpoint in endpoints:
        key = uuid.uuid4().hex
        rows.append(
            {
                "key": key,
                "event_id": event_id,
                "type": kind,
                "endpoint": endpoint.id,
                "endpoint_label": endpoint.label,
                "payload_json": encode(envelope(key, kind, event_, event_id)).decode(),
                "state": PENDING,
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
        )
    conn.execute(insert(_table), rows)
    conn.info[_FLAG] = True
    return len(rows)


@dataclass(frozen=True)
class Delivery:
    """A claimed row: what to send, where, and the lease that lets us write its outcome."""

    id: int
    key: str
    type: str
    endpoint: str
    endpoint_label: str
    payload_json: str
    attempts: int
    created_at: datetime
    failing_since: datetime | None
    token: str


def _due(now: datetime) -> Any:
    return (
        _table.c.state == PENDING,
        _table.c.next_attempt_at <= now,
        or_(_table.c.lease_until.is_(None), _table.c.lease_until < now),
    )


def claim(
    db: Database,
    endpoint_ids: Iterable[str],
    *,
    limit: int,
    lease: float,
    now: datetime | None = None,
) -> list[Delivery]:
    """Lease up to ``limit`` due rows of ``endpoint_ids`` for ``lease`` seconds.

    One ``UPDATE ... WHERE <due> AND id IN (<due ids, skipping locked rows>)``: a row
    someone else leased meanwhile no longer matches (PostgreSQL re-checks the
    condition on the locked row; SQLite runs one writer at a time), so every row has
    one holder.
    """
    ids = tuple(endpoint_ids)
    if not ids or limit <= 0:
        return []
    now = now or utcnow()
    token = uuid.uuid4().hex
    due = _due(now)
    candidates = (
        select(_table.c.id)
        .where(*due, _table.c.endpoint.in_(ids))
        .order_by(_table.c.id.asc())
        .limit(limit)
        # PostgreSQL: concurrent claimers pass over each other's rows instead of
        # queueing on them (SQLite ignores it: it runs one writer at a time anyway).
        .with_for_update(skip_locked=True)
    )
    with db.begin() as conn:
        conn.execute(
            update(_table)
            .where(*due, _table.c.id.in_(candidates.scalar_subquery()))
            .values(lease_token=token, lease_until=now + timedelta(seconds=lease))
        )
        rows = conn.execute(
            select(_table).where(_table.c.lease_token == token).order_by(_table.c.id.asc())
        ).all()
    return [
        Delivery(
            id=row.id,
            key=row.key,
            type=row.type,
            endpoint=row.endpoint,
            endpoint_label=row.endpoint_label,
            payload_json=row.payload_json,
            attempts=row.attempts,
            created_at=row.created_at,
            failing_since=row.failing_since,
            token=token,
        )
        for row in rows
    ]


def mark_delivered(db: Database, delivery: Delivery, now: datetime | None = None) -> bool:
    """The receiver answered 2xx. Matches while the row is pending, whoever holds it now:
    a slower holder whose lease ran out finds it delivered and stops."""
    now = now or utcnow()
    with db.begin() as conn:
        result = conn.execute(
            update(_table)
            .where(_table.c.id == delivery.id, _table.c.state == PENDING)
            .values(
                state=DELIVERED,
                attempts=_table.c.attempts + 1,
                delivered_at=now,
                last_attempt_at=now,
                failing_since=None,
                last_error=None,
                lease_token=None,
                lease_until=None,
            )
        )
    return result.rowcount == 1


def mark_failed(
    db: Database,
    delivery: Delivery,
    error: str,
    *,
    retry_at: datetime | None,
    now: datetime | None = None,
) -> bool:
    """The attempt failed: due again at ``retry_at``, or given up on (``None``).

    Only the lease holder writes this (a stale holder's failure is not news).
    """
    now = now or utcnow()
    values: dict[str, Any] = {
        "attempts": _table.c.attempts + 1,
        "last_attempt_at": now,
        "last_error": error[:MAX_ERROR],
        "failing_since": func.coalesce(_table.c.failing_since, now),
        "lease_token": None,
        "lease_until": None,
    }
    if retry_at is None:
        values["state"] = FAILED
    else:
        values["next_attempt_at"] = retry_at
    with db.begin() as conn:
        result = conn.execute(
            update(_table)
            .where(
                _table.c.id == delivery.id,
                _table.c.state == PENDING,
                _table.c.lease_token == delivery.token,
            )
            .values(**values)
        )
    return result.rowcount == 1


def postpone(db: Database, deliveries: Sequence[Delivery], until: datetime) -> int:
    """Give claimed rows back, due at ``until`` (their endpoint just failed: no attempt made)."""
    if not deliveries:
        return 0
    with db.begin() as conn:
        result = conn.execute(
            update(_table)
            .where(
                _table.c.id.in_([d.id for d in deliveries]),
                _table.c.state == PENDING,
                _table.c.lease_token == deliveries[0].token,
            )
            .values(next_attempt_at=until, lease_token=None, lease_until=None)
        )
    return int(result.rowcount)


def retry_failed(db: Database, *, everything: bool = False, now: datetime | None = None) -> int:
    """Rows given up on become due now, with a fresh retry period; with ``everything``,
    rows waiting out a backoff are due now too."""
    now = now or utcnow()
    with db.begin() as conn:
        revived = conn.execute(
            update(_table)
            .where(_table.c.state == FAILED)
            .values(state=PENDING, next_attempt_at=now, failing_since=None)
        ).rowcount
        hurried = 0
        if everything:
            hurried = conn.execute(
                update(_table)
                .where(_table.c.state == PENDING, _table.c.next_attempt_at > now)
                .values(next_attempt_at=now)
            ).rowcount
    return int(revived) + int(hurried)


def prune(db: Database, older_than: float, now: datetime | None = None) -> int:
    """Delete rows delivered more than ``older_than`` seconds ago."""
    cutoff = (now or utcnow()) - timedelta(seconds=older_than)
    with db.begin() as conn:
        result = conn.execute(
            delete(_table).where(_table.c.state == DELIVERED, _table.c.delivered_at < cutoff)
        )
    return int(result.rowcount)


@dataclass(frozen=True)
class EndpointCounts:
    """Where one endpoint's notifications stand."""

    endpoint: str
    label: str
    pending: int = 0
    delivered: int = 0
    failed: int = 0
    retrying: int = 0
    failing_since: datetime | None = None
    oldest_pending_at: datetime | None = None
    last_delivered_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


def counts(db: Database) -> list[EndpointCounts]:
    """Per endpoint: rows per state, since when it fails, its newest error."""
    t = _table
    grouped = (
        select(
            t.c.endpoint,
            t.c.endpoint_label,
            t.c.state,
            func.count(),
            func.min(t.c.failing_since),
            func.min(t.c.created_at),
            func.max(t.c.delivered_at),
            func.count(t.c.failing_since),
        )
        .group_by(t.c.endpoint, t.c.endpoint_label, t.c.state)
        .order_by(t.c.endpoint)
    )
    newest_errors = (
        select(t.c.endpoint, t.c.last_error, t.c.last_attempt_at)
        .where(t.c.state != DELIVERED, t.c.last_error.is_not(None))
        .order_by(t.c.last_attempt_at.desc())
        .limit(500)
    )
    with db.connect() as conn:
        rows = conn.execute(grouped).all()
        errors = conn.execute(newest_errors).all()
    found: dict[str, dict[str, Any]] = {}
    for endpoint, label, state, n, failing, oldest, delivered_at, retrying in rows:
        entry = found.setdefault(endpoint, {"endpoint": endpoint, "label": label})
        entry[state] = int(n)
        if state == PENDING:
            entry["retrying"] = int(retrying)
            entry["oldest_pending_at"] = oldest
        if state in (PENDING, FAILED):
            entry["failing_since"] = _earliest(entry.get("failing_since"), failing)
        elif state == DELIVERED:
            entry["last_delivered_at"] = delivered_at
    for endpoint, error, at in errors:
        failing = found.get(endpoint)
        if failing is not None and "last_error" not in failing:
            failing["last_error"], failing["last_error_at"] = error, at
    return [EndpointCounts(**entry) for entry in found.values()]


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return min(a, b)
