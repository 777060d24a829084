"""The store's identity row and a read of everything that says which store this is."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, insert, select

from ..domain.record import SqlRecord, StoreIdentity
from ..domain.status import utcnow
from . import schema
from .database import Database


def create_in(conn: Connection) -> StoreIdentity:
    """Give the store an identity unless it has one (inside the migration's transaction)."""
    found = _identity(conn)
    if found is not None:
        return found
    made = StoreIdentity(id=uuid.uuid4().hex, created_at=utcnow())
    conn.execute(
        insert(schema.store_identity).values(id=1, store_id=made.id, created_at=made.created_at)
    )
    return made


def _identity(conn: Connection) -> StoreIdentity | None:
    row = conn.execute(
        select(schema.store_identity.c.store_id, schema.store_identity.c.created_at).where(
            schema.store_identity.c.id == 1
        )
    ).first()
    return StoreIdentity(id=row.store_id, created_at=row.created_at) if row else None


def read_record(db: Database) -> SqlRecord:
    """Schema version (0: empty), identity and state version of the store, read-only.

    Raises ``StoreUnavailable`` when SQL cannot be reached.
    """
    with db.connect() as conn:
        dialect = conn.dialect
        if not dialect.has_table(conn, schema.schema_version.name):
            return SqlRecord(schema_version=0)
        row = conn.execute(select(schema.schema_version.c.version)).first()
        schema_version = int(row[0]) if row else 0
        found = None
        if dialect.has_table(conn, schema.store_identity.name):
            found = _identity(conn)
        version = None
        if dialect.has_table(conn, schema.state.name):
            version = conn.execute(
                select(schema.state.c.version).where(schema.state.c.id == 1)
            ).scalar_one_or_none()
    return SqlRecord(schema_version=schema_version, identity=found, version=version)
