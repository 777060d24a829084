"""Fixtures: an app database (SQLite or PostgreSQL) beside a control plane of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from maintenance import EnhancedMaintenanceModeService
from maintenance.store.database import connect

from .models import Base


@pytest.fixture
def control(make_service, tmp_path: Path) -> EnhancedMaintenanceModeService:  # type: ignore[no-untyped-def]
    """The control plane, its SQL in a file apart from the app's database."""
    return make_service(database_url=f"sqlite:///{tmp_path / 'control.db'}", kind="web").start()


@pytest.fixture
def app_engine(database_url: str) -> Iterator[Engine]:
    """The app's own database (SQLite file or a fresh PostgreSQL schema), tables created."""
    engine = connect(database_url)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_app_engine(tmp_path: Path) -> Iterator[Engine]:
    """The app's database on SQLite only (behaviour that does not depend on the engine)."""
    engine = connect(f"sqlite:///{tmp_path / 'app.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
