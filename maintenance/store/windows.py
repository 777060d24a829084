"""SQL access to ``maintenance_windows``: scheduled maintenance windows, started and ended
by the beat check (``workers.beat``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from . import schema
from .database import Database

SCHEDULED = "scheduled"
ACTIVE = "active"
ENDED = "ended"
SKIPPED = "skipped"  # maintenance was already on when the window opened
MISSED = "missed"  # no beat ran between its start and its end
CANCELLED = "cancelled"


@dataclass(frozen=True)
class Window:
    """One scheduled window."""

    id: int
    start_at: datetime
    end_at: datetime
    reason: str
    mode: str
    created_by: str | None
    state: str
    activation_id: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "start_at": self.start_at.isoformat(),
            "end_at": self.end_at.isoformat(),
            "reason": self.reason,
            "mode": self.mode,
            "created_by": self.created_by,
            "state": self.state,
            "activation_id": self.activation_id,
        }


def _from_row(row: Any) -> Window:
    return Window(
        id=row.id,
        start_at=row.start_at,
        end_at=row.end_at,
        reason=row.reason,
        mode=row.mode,
        created_by=row.created_by,
        state=row.state,
        activation_id=row.activation_id,
    )


class WindowStore:
    """Create, list and move windows through their states (conditionally)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self, start_at: datetime, end_at: datetime, reason: str, mode: str, created_by: str | None
    ) -> Window:
        """Store a new scheduled window."""
        with self.db.begin() as conn:
            result = conn.execute(
                insert(schema.windows).values(
                    start_at=start_at,
                    end_at=end_at,
                    reason=reason,
                    mode=mode,
                    created_by=created_by,
                    state=SCHEDULED,
                )
            )
            key = result.inserted_primary_key
        assert key is not None
        found = self.get(int(key[0]))
        assert found is not None
        return found

    def get(self, window_id: int) -> Window | None:
        """One window by id."""
        with self.db.connect() as conn:
            query = select(schema.windows).where(schema.windows.c.id == window_id)
            row = conn.execute(query).first()
        return _from_row(row) if row is not None else None

    def list(self, states: tuple[str, ...] | None = None) -> list[Window]:
        """Windows by start time, optionally only in ``states``."""
        table = schema.windows
        query = select(table).order_by(table.c.start_at.asc(), table.c.id.asc())
        if states:
            query = query.where(table.c.state.in_(states))
        with self.db.connect() as conn:
            return [_from_row(row) for row in conn.execute(query).all()]

    def transition(self, window: Window, from_state: str, to_state: str, **values: Any) -> bool:
        """Move ``window`` only if still in ``from_state`` (two beats never both act)."""
        table = schema.windows
        with self.db.begin() as conn:
            result = conn.execute(
                update(table)
                .where(table.c.id == window.id, table.c.state == from_state)
                .values(state=to_state, **values)
            )
            return result.rowcount == 1
