"""The SQL system of record on SQLite and PostgreSQL: schema, CAS, event log."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from maintenance import ConflictError, MaintenanceStatus, StoreUnavailable
from maintenance.store import (
    SCHEMA_VERSION,
    Database,
    EventLog,
    MaintenanceEvent,
    StateStore,
    current_schema_version,
    upgrade,
)


@pytest.fixture
def db(database_url: str) -> Database:
    database = Database(database_url)
    upgrade(database.engine)
    yield database
    database.dispose()


def test_upgrade_creates_the_schema_once_and_is_idempotent(database_url: str) -> None:
    database = Database(database_url)
    assert current_schema_version(database.engine) == 0
    assert upgrade(database.engine) == list(range(1, SCHEMA_VERSION + 1))
    assert upgrade(database.engine) == []
    assert current_schema_version(database.engine) == SCHEMA_VERSION
    assert StateStore(database).load() == MaintenanceStatus()
    database.dispose()


def test_compare_and_set_bumps_the_version_and_logs_the_event(db: Database) -> None:
    store = StateStore(db)
    new = MaintenanceStatus(is_active=True, reason="upgrade")
    stored = store.compare_and_set(0, new, MaintenanceEvent("maintenance_enabled", "alice"))
    assert stored.version == 1
    assert store.load() == stored
    [event] = EventLog(db).history()
    assert (event.kind, event.actor, event.version) == ("maintenance_enabled", "alice", 1)


def test_a_stale_compare_and_set_writes_nothing(db: Database) -> None:
    store = StateStore(db)
    store.compare_and_set(0, MaintenanceStatus(reason="first"), MaintenanceEvent("a"))
    with pytest.raises(ConflictError) as info:
        store.compare_and_set(0, MaintenanceStatus(reason="second"), MaintenanceEvent("b"))
    assert info.value.current_version == 1
    assert store.load().reason == "first"
    assert [e.kind for e in EventLog(db).history()] == ["a"]


def test_racing_threads_one_winner_per_version(db: Database) -> None:
    """16 threads race on the same version: exactly one wins, the rest conflict."""
    store = StateStore(db)
    barrier = threading.Barrier(16)
    outcomes: list[str] = []

    def contender(n: int) -> None:
        barrier.wait()
        try:
            store.compare_and_set(
                0, MaintenanceStatus(reason=f"admin{n}"), MaintenanceEvent("x", f"admin{n}")
            )
            outcomes.append(f"won:{n}")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and outcomes.count("conflict") == 15
    winner = winners[0].split(":")[1]
    assert store.load().reason == f"admin{winner}"
    assert [e.actor for e in EventLog(db).history()] == [f"admin{winner}"]


_RACER = """
import sys
from maintenance import ConflictError, MaintenanceStatus
from maintenance.store import Database, MaintenanceEvent, StateStore
store = StateStore(Database(sys.argv[1]))
done = 0
for _ in range(int(sys.argv[3])):
    while True:
        current = store.load()
        try:
            store.compare_and_set(current.version, current.with_changes(
                reason=f"{sys.argv[2]}:{current.version}"), MaintenanceEvent("inc", sys.argv[2]))
            done += 1
            break
        except ConflictError:
            continue
print(done)
"""


def test_two_processes_never_lose_an_update(db: Database, tmp_path: Path) -> None:
    """Two processes each apply 40 read-modify-CAS updates: all 80 land, none lost."""
    script = tmp_path / "racer.py"
    script.write_text(_RACER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), db.url, name, "40"], stdout=subprocess.PIPE, text=True
        )
        for name in ("p1", "p2")
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outputs == ["40", "40"]
    assert StateStore(db).load().version == 80
    history = EventLog(db).history(limit=200)
    assert len(history) == 80
    assert sorted(e.version for e in history) == list(range(1, 81))


def _session_id(conn: sa.Connection) -> object:
    if conn.dialect.name == "postgresql":
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    return id(conn.connection.dbapi_connection)


def test_a_pinned_store_keeps_one_connection_and_replaces_a_lost_one(db: Database) -> None:
    """``Database.pinned``: its transactions share one connection, commit as usual and
    leave none open; a connection the server dropped fails one transaction with
    ``StoreUnavailable`` and the next opens a new one; the connection goes back after."""
    store = StateStore(db)
    with db.pinned() as pinned:
        with pinned.begin() as conn:
            first = _session_id(conn)
        StateStore(pinned).compare_and_set(
            0, MaintenanceStatus(reason="pinned"), MaintenanceEvent("a")
        )
        with pinned.connect() as conn:
            assert _session_id(conn) == first
        assert store.load().reason == "pinned"  # committed: seen on another connection
        assert not pinned._conn.in_transaction()  # type: ignore[attr-defined]  # a read's transaction ended
        if db.engine.dialect.name == "postgresql":
            with db.begin() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            with pytest.raises(StoreUnavailable), pinned.begin() as conn:
                conn.execute(sa.text("SELECT 1"))
            with pinned.begin() as conn:
                assert _session_id(conn) != first
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
