"""The append-only event log: who did what, why and when."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Select, func, insert, select

from ..domain.history import EventPage, MaintenanceEvent
from ..notify import outbox
from . import schema
from .database import Database


class EventLog:
    """Append to and read the event log."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def append_in(conn: Connection, event: MaintenanceEvent) -> None:
        """Append inside an existing transaction, with the notifications it makes: they
        commit (or roll back) together with the entry (see ``maintenance.notify.outbox``)."""
        result = conn.execute(
            insert(schema.events).values(
                at=event.at,
                kind=event.kind,
                actor=event.actor,
                reason=event.reason,
                version=event.version,
                activation_id=event.activation_id,
                details_json=json.dumps(event.details, default=str, sort_keys=True),
            )
        )
        key = result.inserted_primary_key
        outbox.enqueue_in(conn, event, int(key[0]) if key else None)

    def append(self, event: MaintenanceEvent) -> None:
        """Append in its own transaction."""
        with self.db.begin() as conn:
            self.append_in(conn, event)

    def history(
        self,
        limit: int = 50,
        *,
        activation_id: str | None = None,
        kinds: tuple[str, ...] | None = None,
        before_id: int | None = None,
        offset: int = 0,
    ) -> list[MaintenanceEvent]:
        """Newest first, optionally of one activation or of some kinds, below an id
        (``before_id``) and skipping the first ``offset`` of what matches."""
        query = _where(
            select(schema.events), activation_id=activation_id, kinds=kinds, before_id=before_id
        )
        query = query.order_by(schema.events.c.id.desc()).limit(limit).offset(offset)
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [
            MaintenanceEvent(
                id=row.id,
                at=row.at,
                kind=row.kind,
                actor=row.actor,
                reason=row.reason,
                version=row.version,
                activation_id=row.activation_id,
                details=json.loads(row.details_json or "{}"),
            )
            for row in rows
        ]

    def count(
        self,
        *,
        activation_id: str | None = None,
        kinds: tuple[str, ...] | None = None,
        before_id: int | None = None,
    ) -> int:
        """Number of entries (matching the filters ``history`` takes)."""
        query = _where(
            select(func.count()).select_from(schema.events),
            activation_id=activation_id,
            kinds=kinds,
            before_id=before_id,
        )
        with self.db.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def page(
        self,
        limit: int,
        *,
        offset: int = 0,
        activation_id: str | None = None,
        kinds: tuple[str, ...] | None = None,
        before_id: int | None = None,
    ) -> EventPage:
        """One page of ``history`` with the number of entries matching the filters."""
        filters: dict[str, Any] = {
            "activation_id": activation_id,
            "kinds": kinds,
            "before_id": before_id,
        }
        total = self.count(**filters)
        events = self.history(limit, offset=offset, **filters)
        return EventPage(events=tuple(events), total=total, offset=offset, limit=limit)

    def kinds(self) -> list[str]:
        """The kinds of event the log holds, sorted."""
        query = select(schema.events.c.kind).distinct().order_by(schema.events.c.kind)
        with self.db.connect() as conn:
            return [str(kind) for kind in conn.execute(query).scalars()]


def _where(
    query: Select[Any],
    *,
    activation_id: str | None,
    kinds: tuple[str, ...] | None,
    before_id: int | None,
) -> Select[Any]:
    if activation_id is not None:
        query = query.where(schema.events.c.activation_id == activation_id)
    if kinds:
        query = query.where(schema.events.c.kind.in_(kinds))
    if before_id is not None:
        query = query.where(schema.events.c.id < before_id)
    return query
