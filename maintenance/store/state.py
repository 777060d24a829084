"""The versioned state row: read it, and change it only by compare-and-set."""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from ..domain.status import MaintenanceStatus, utcnow
from ..errors import ConflictError
from . import schema
from .database import Database
from .eventlog import EventLog, MaintenanceEvent


class StateStore:
    """Reads and compare-and-set writes of the one ``maintenance_state`` row."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self) -> MaintenanceStatus:
        """The current versioned status (raises ``StoreUnavailable`` when SQL is down)."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(schema.state.c.version, schema.state.c.status_json).where(
                    schema.state.c.id == 1
                )
            ).first()
        if row is None:
            return MaintenanceStatus()
        status = MaintenanceStatus.from_json(row.status_json)
        return status if status.version == row.version else status.with_changes(version=row.version)

    def compare_and_set(
        self, expected_version: int, new: MaintenanceStatus, event: MaintenanceEvent
    ) -> MaintenanceStatus:
        """Store ``new`` as version ``expected_version + 1`` and log ``event``, atomically.

        Raises ``ConflictError`` when the row is no longer at ``expected_version``
        (another writer won); nothing is written in that case.
        """
        stored = new.with_changes(version=expected_version + 1, updated_at=utcnow())
        with self.db.begin(fresh=True) as conn:
            if not _replace(conn, expected_version, stored):
                current = conn.execute(
                    select(schema.state.c.version).where(schema.state.c.id == 1)
                ).scalar_one_or_none()
                raise ConflictError(
                    f"maintenance state changed (now version {current}, expected "
                    f"{expected_version}); re-read the status and try again",
                    current_version=int(current or 0),
                )
            EventLog.append_in(conn, event.with_version(stored.version))
        return stored

    def adopt(
        self, expected_version: int, status: MaintenanceStatus, event: MaintenanceEvent
    ) -> MaintenanceStatus:
        """Store ``status`` at its own (higher) version in a store the fleet is adopting.

        The only write that skips the record guard (the store is not the fleet's yet);
        still a compare-and-set against ``expected_version``.
        """
        stored = status.with_changes(updated_at=utcnow())
        with self.db.begin(guarded=False) as conn:
            if not _replace(conn, expected_version, stored):
                raise ConflictError(
                    "the store's state changed during adoption; look again and retry",
                    current_version=expected_version,
                )
            EventLog.append_in(conn, event.with_version(stored.version))
        return stored


def _replace(conn: Connection, expected_version: int, stored: MaintenanceStatus) -> bool:
    """Write ``stored`` over the state row if it is still at ``expected_version``."""
    result = conn.execute(
        update(schema.state)
        .where(schema.state.c.id == 1, schema.state.c.version == expected_version)
        .values(
            version=stored.version,
            status_json=stored.to_json(),
            updated_at=stored.updated_at,
        )
    )
    return result.rowcount == 1
