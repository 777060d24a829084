"""Schema creation and upgrades, owned by the project (``maintenance db upgrade``).

Each migration is a numbered function; ``upgrade`` applies those above the
recorded version, once, and is safe when several processes start together.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from ..domain.status import INITIAL_STATUS, utcnow
from . import identity, schema


def _v1_initial(conn: Connection) -> None:
    schema.metadata.create_all(conn, checkfirst=True)
    exists = conn.execute(select(schema.state.c.id).where(schema.state.c.id == 1)).first()
    if exists is None:
        conn.execute(
            insert(schema.state).values(
                id=1, version=0, status_json=INITIAL_STATUS.to_json(), updated_at=utcnow()
            )
        )


def _v2_notifications(conn: Connection) -> None:
    schema.notifications.create(conn, checkfirst=True)


def _v3_store_identity(conn: Connection) -> None:
    schema.store_identity.create(conn, checkfirst=True)
    identity.create_in(conn)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema: state, events, jobs, blocked attempts, windows, reports", _v1_initial),
    (2, "notification outbox", _v2_notifications),
    (3, "store identity", _v3_store_identity),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def current_schema_version(engine: Engine) -> int:
    """The applied schema version (0 for an empty database)."""
    with engine.connect() as conn:
        if not engine.dialect.has_table(conn, schema.schema_version.name):
            return 0
        row = conn.execute(select(schema.schema_version.c.version)).first()
        return int(row[0]) if row else 0


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))


def _apply_pending(engine: Engine) -> list[int]:
    applied: list[int] = []
    with engine.begin() as conn:
        _lock(conn)
        schema.schema_version.create(conn, checkfirst=True)
        row = conn.execute(select(schema.schema_version.c.version)).first()
        version = int(row[0]) if row else 0
        for number, _title, migrate in MIGRATIONS:
            if number > version:
                migrate(conn)
                applied.append(number)
                version = number
        if row is None:
            conn.execute(insert(schema.schema_version).values(id=1, version=version))
        elif applied:
            conn.execute(update(schema.schema_version).values(version=version))
    return applied


def upgrade(engine: Engine, attempts: int = 5) -> list[int]:
    """Apply pending migrations; return the numbers applied (empty if up to date)."""
    for attempt in range(attempts):
        try:
            return _apply_pending(engine)
        except SQLAlchemyError:
            # Another process created the same objects at the same moment
            # (SQLite has no advisory lock); its work is ours, so look again.
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    return []
