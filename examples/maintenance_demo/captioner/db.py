"""The captioner's database: engine, guarded sessions and schema, beside the control plane's.

``CAPTIONER_DATABASE_URL`` names it; by default it is ``captioner.db`` next to
the control plane's SQLite file, or the control plane's own PostgreSQL
database (its tables are prefixed ``captioner_``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session, sessionmaker

from maintenance import Settings
from maintenance.integrity import ServiceSource, SessionGuard, guard_session
from maintenance.store.database import connect

from .models import MODEL_OPERATIONS, Base


def database_url(env: Mapping[str, str] | None = None) -> str:
    """``CAPTIONER_DATABASE_URL``, else a sibling of the control plane's database."""
    env = os.environ if env is None else env
    explicit = env.get("CAPTIONER_DATABASE_URL")
    if explicit:
        return explicit
    control = Settings.from_env(env).database_url
    if control.startswith("sqlite:///") and control not in ("sqlite:///", "sqlite:///:memory:"):
        path = Path(control[len("sqlite:///") :])
        return f"sqlite:///{path.with_name('captioner.db')}"
    return control


class CaptionerDatabase:
    """An engine, a ``sessionmaker`` (guarded once ``guard`` is called) and the schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = connect(url)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self.guarded: SessionGuard | None = None

    def guard(self, service: ServiceSource, user: Callable[[], Any] | None = None) -> SessionGuard:
        """Refuse blocked writes during maintenance (``maintenance.integrity``); idempotent."""
        if self.guarded is None:
            self.guarded = guard_session(
                self.sessions, service, MODEL_OPERATIONS, user=user, name="captioner"
            )
        return self.guarded

    def create_schema(self) -> None:
        """Create the captioner's tables (idempotent)."""
        Base.metadata.create_all(self.engine)

    def has_schema(self) -> bool:
        """Whether the tables exist."""
        return inspect(self.engine).has_table(Base.metadata.sorted_tables[0].name)

    def after_fork(self) -> None:
        """Drop connections inherited from the parent process (prefork pool children)."""
        self.engine.dispose(close=False)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
