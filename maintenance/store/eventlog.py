"""The append-only event log: who did what, why and when."""

from __future__ import annotations

import json

from sqlalchemy import Connection, func, insert, select

from ..domain.history import MaintenanceEvent
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
    ) -> list[MaintenanceEvent]:
        """Newest first, optionally of one activation or of some kinds."""
        query = select(schema.events).order_by(schema.events.c.id.desc()).limit(limit)
        if activation_id is not None:
            query = query.where(schema.events.c.activation_id == activation_id)
        if kinds:
            query = query.where(schema.events.c.kind.in_(kinds))
        if before_id is not None:
            query = query.where(schema.events.c.id < before_id)
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

    def count(self) -> int:
        """Number of entries."""
        with self.db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.events)).scalar_one())
