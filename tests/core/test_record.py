"""The system of record cannot silently be replaced or rolled back.

A fleet (three registered web nodes) runs on real Redis and a SQLite file; the
file is moved away, or an older copy is put back, while it runs. The CLI (a real
process), the JSON API and the status refuse to write and say why; nothing is
written meanwhile; ``maintenance db upgrade`` creates a store on request and
``maintenance db adopt`` makes the fleet use it, after which writes work again.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from maintenance import EnhancedMaintenanceModeService, Settings, StoreMismatch
from maintenance.domain.record import FleetRecord, SqlRecord, StoreIdentity, judge
from maintenance.keys import Keys
from maintenance.store.identity import read_record
from tests.core.cli import run_cli
from tests.web.conftest import build_app, login

API = "/api/maintenance"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}
WHEN = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


# -- the judgement -------------------------------------------------------------------


def _sql(version: int | None = 5, store: str = "a", schema: int = 3) -> SqlRecord:
    return SqlRecord(schema, StoreIdentity(store, WHEN), version)


def _fleet(version: int | None = 5, store: str | None = "a") -> FleetRecord:
    return FleetRecord(StoreIdentity(store, WHEN) if store else None, version)


def test_judge_accepts_the_fleets_store_and_claims_an_unclaimed_one() -> None:
    assert judge(_sql(7), _fleet(5)).ok
    first = judge(_sql(0), FleetRecord())
    assert first.ok and first.claim
    assert judge(SqlRecord(0), FleetRecord()).ok  # a new deployment
    assert judge(SqlRecord(0), _fleet(0, None)).ok  # nothing was ever written


@pytest.mark.parametrize(
    ("sql", "fleet", "words"),
    [
        (SqlRecord(0), _fleet(55), "the SQL store is empty but the fleet has seen version 55"),
        (SqlRecord(0), _fleet(0, "a"), "empty"),
        (_sql(0, store="b"), _fleet(55), "is not the fleet's (store a"),
        (_sql(40), _fleet(55), "at version 40 but the fleet has seen version 55"),
        (_sql(40), _fleet(55, None), "rolled back"),
    ],
)
def test_judge_refuses_empty_other_and_older_stores(
    sql: SqlRecord, fleet: FleetRecord, words: str
) -> None:
    verdict = judge(sql, fleet)
    assert not verdict.ok and words in (verdict.reason or "")
    assert "maintenance db" in (verdict.reason or "")


# -- a running fleet on SQLite ---------------------------------------------------------


def sqlite_path(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


def move_away(db: Path, to: Path) -> None:
    """What an operator does with ``mv``: the file and its WAL companions go elsewhere."""
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            source.rename(Path(f"{to}{suffix}"))


def tables(db: Path) -> list[str]:
    if not db.exists():
        return []
    with closing(sqlite3.connect(db)) as conn:
        return [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]


def state_version(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute("select version from maintenance_state").fetchone()[0])


@pytest.fixture
def fleet(make_service: Callable[..., EnhancedMaintenanceModeService]) -> list[Any]:
    """Three web nodes of the deployment (registered: fenced activations wait for them)."""
    return [make_service(kind="web").start() for _ in range(3)]


def fleet_versions(settings: Settings) -> tuple[int, list[int]]:
    """What Redis says: the published version and every node's applied one."""
    keys = Keys(settings.redis_prefix)
    client = redis.Redis.from_url(settings.redis_url or "")
    published = int(client.get(keys.status_version) or -1)
    applied = sorted(int(v) for v in client.hvals(keys.node_applied))
    return published, applied


def fleet_at(settings: Settings) -> int | None:
    """The version the whole fleet is at (published and applied by every node), else None."""
    published, applied = fleet_versions(settings)
    return published if applied and set(applied) == {published} else None


def one_error_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("maintenance: error: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    return lines[0]


@pytest.fixture
def api_of(
    make_service: Callable[..., EnhancedMaintenanceModeService],
) -> Callable[[], Any]:
    """An admin's API client on a web instance started now (its own SQL connections)."""

    def start() -> Any:
        app = build_app(make_service(kind="web").start())
        return login(app.test_client(), "root", "admin")

    return start


def test_a_moved_sqlite_file_is_refused_then_a_new_store_is_adopted_on_purpose(
    settings: Settings,
    make_service: Callable[..., EnhancedMaintenanceModeService],
    cli_env: dict[str, str],
    fleet: list[EnhancedMaintenanceModeService],
    api_of: Callable[[], Any],
    tmp_path: Path,
) -> None:
    operator = make_service(kind="cli", register=False)
    for n in range(3):
        operator.enable_maintenance(f"step {n}", enabled_by="ops", wait=10)
    db = sqlite_path(settings)
    seen = state_version(db)
    assert fleet_at(settings) == seen

    admin = api_of()  # a web instance running since before the move
    assert admin.get(f"{API}/status").status_code == 200

    move_away(db, tmp_path / "moved.db")

    refused = run_cli(cli_env, "enable", "--reason", "x", "--wait", "5")
    line = one_error_line(refused, "empty", f"version {seen}", "maintenance db upgrade")
    assert "db adopt" in line

    status = run_cli(cli_env, "status", "--json")
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["degraded"] and "the SQL store is empty" in body["degraded_reason"]
    assert body["version"] == seen and body["is_active"]  # what the fleet enforces
    human = run_cli(cli_env, "status").stdout
    assert "DEGRADED: the SQL store is empty" in human

    # The running instance notices that its open file is no longer the one at the path.
    answer = admin.post(f"{API}/enable", json={"reason": "via api"}, headers=SAME_ORIGIN)
    assert answer.status_code == 503 and answer.is_json, answer.get_data(as_text=True)
    assert answer.get_json()["error"] == "store_mismatch"
    assert "empty" in answer.get_json()["message"]
    api_status = admin.get(f"{API}/status").get_json()
    assert api_status["degraded"] and "empty" in api_status["degraded_reason"]

    check = run_cli(cli_env, "db", "check")
    assert check.returncode == 1 and "REFUSING WRITES" in check.stdout

    # Nothing was written anywhere meanwhile: no schema in the new place, the fleet
    # and the moved store where they were.
    assert tables(db) == []
    assert fleet_at(settings) == seen
    assert state_version(tmp_path / "moved.db") == seen

    # On request: a new store, which the fleet does not use until it is adopted.
    created = run_cli(cli_env, "db", "upgrade")
    assert created.returncode == 0 and "db adopt" in created.stdout, created.stdout
    one_error_line(run_cli(cli_env, "enable", "--reason", "x"), "is not the fleet's")
    assert state_version(db) == 0

    # Adoption asks first; without an answer nothing happens.
    assert run_cli(cli_env, "db", "adopt").returncode == 1
    adopted = run_cli(cli_env, "db", "adopt", "--yes", "--reason", "file lost", "--wait", "10")
    assert adopted.returncode == 0, adopted.stderr
    assert f"the fleet had seen {seen}" in adopted.stdout
    assert "All 4 live node(s) applied it" in adopted.stdout  # the API's instance too
    assert fleet_at(settings) == seen + 1
    for node in fleet:  # the fleet enforces what it did before: the status came along
        assert node.status.is_active and node.status.reason == "step 2"

    history = json.loads(run_cli(cli_env, "history", "--json").stdout)
    assert history[0]["kind"] == "store_adopted" and history[0]["reason"] == "file lost"
    assert history[0]["details"]["fleet_version"] == seen

    again = run_cli(cli_env, "db", "adopt", "--yes")
    assert again.returncode == 0 and "nothing to adopt" in again.stdout
    done = run_cli(cli_env, "disable", "--wait", "10")
    assert done.returncode == 0, done.stderr
    assert "All 4 live node(s) applied it" in done.stdout
    assert fleet_at(settings) == seen + 2
    assert not admin.get(f"{API}/status").get_json()["degraded"]


def test_an_older_copy_put_back_is_a_rollback_and_refused(
    settings: Settings,
    make_service: Callable[..., EnhancedMaintenanceModeService],
    cli_env: dict[str, str],
    fleet: list[EnhancedMaintenanceModeService],
    api_of: Callable[[], Any],
    tmp_path: Path,
) -> None:
    db = sqlite_path(settings)
    operator = make_service(kind="cli", register=False)
    operator.enable_maintenance("old", enabled_by="ops", wait=10)
    backup = tmp_path / "backup.db"
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(backup)) as copy:
        source.backup(copy)
    old = state_version(backup)
    for n in range(3):
        operator.enable_maintenance(f"new {n}", enabled_by="ops", wait=10)
    seen = state_version(db)

    move_away(db, tmp_path / "current.db")
    backup.rename(db)

    line = one_error_line(
        run_cli(cli_env, "enable", "--reason", "x"), f"at version {old}", f"seen version {seen}"
    )
    assert "rolled back" in line
    admin = api_of()
    answer = admin.post(f"{API}/disable", json={}, headers=SAME_ORIGIN)
    assert answer.status_code == 503 and answer.get_json()["error"] == "store_mismatch"
    body = admin.get(f"{API}/status").get_json()
    assert body["degraded"] and "rolled back" in body["degraded_reason"]
    assert state_version(db) == old and fleet_at(settings) == seen

    adopted = run_cli(cli_env, "db", "adopt", "--yes", "--use", "store", "--wait", "10")
    assert adopted.returncode == 0, adopted.stderr
    assert "status taken from the store" in adopted.stdout
    assert fleet_at(settings) == seen + 1
    for node in fleet:  # the operator chose the store's status: the old reason is back
        assert node.status.reason == "old"
    answer = admin.post(f"{API}/disable", json={}, headers=SAME_ORIGIN)
    assert answer.status_code == 200, answer.get_json()


def test_auto_migrate_creates_a_store_only_where_no_deployment_runs(
    settings: Settings,
    make_service: Callable[..., EnhancedMaintenanceModeService],
    tmp_path: Path,
) -> None:
    first = make_service(kind="web").start()  # a new deployment: the store is created
    first.enable_maintenance("first", enabled_by="ops", wait=0)
    move_away(sqlite_path(settings), tmp_path / "gone.db")

    late = make_service(kind="web")  # a process started under the running deployment
    assert tables(sqlite_path(settings)) == []
    with pytest.raises(StoreMismatch, match="empty"):
        late.enable_maintenance("x", enabled_by="ops", wait=0)
    with pytest.raises(StoreMismatch):
        late.record_event("note", actor="ops")
    assert tables(sqlite_path(settings)) == []


def test_a_store_from_another_deployment_is_refused(
    settings: Settings,
    make_service: Callable[..., EnhancedMaintenanceModeService],
    tmp_path: Path,
) -> None:
    service = make_service(kind="web").start()
    service.enable_maintenance("ours", enabled_by="ops", wait=0)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    stranger = make_service(kind="cli", register=False, database_url=other, auto_migrate=False)
    from maintenance.store.migrations import upgrade

    upgrade(stranger.db.engine)  # a valid store, at a higher version than the fleet's
    with stranger.db.engine.begin() as conn:
        conn.execute(sa.text("update maintenance_state set version = 99"))
    with pytest.raises(StoreMismatch, match="is not the fleet's"):
        stranger.disable_maintenance("ops")
    assert read_record(stranger.db).version == 99


# -- PostgreSQL: a database dropped and recreated, or restored from an older copy ----


@pytest.fixture
def pg_database(postgres_available: bool) -> Iterator[Callable[..., str]]:
    """Databases of this test's own on the machine's PostgreSQL (dropped afterwards)."""
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    from tests.services import MACHINE_POSTGRES

    admin = sa.create_engine(MACHINE_POSTGRES, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def execute(sql: str) -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(sql))

    def create(name: str, template: str | None = None) -> str:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        command = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        deadline = time.monotonic() + 30
        while True:  # a copy needs the template to itself: the nodes' polls come and go
            if template:
                execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{template}' AND pid <> pg_backend_pid()"
                )
            try:
                execute(command)
                break
            except sa.exc.OperationalError as exc:
                if "being accessed by other users" not in str(exc) or time.monotonic() > deadline:
                    raise
        made.append(name)
        return MACHINE_POSTGRES.rsplit("/", 1)[0] + f"/{name}"

    yield create
    for name in made:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.mark.postgres
def test_postgres_dropped_and_recreated_or_restored_older_is_refused_until_adopted(
    settings: Settings,
    make_service: Callable[..., EnhancedMaintenanceModeService],
    pg_database: Callable[..., str],
) -> None:
    name = f"mrec_{settings.redis_prefix.lower()}"
    url = pg_database(name)
    nodes = [make_service(kind="web", database_url=url).start() for _ in range(2)]
    operator = make_service(kind="cli", register=False, database_url=url)
    operator.enable_maintenance("pg one", enabled_by="ops", wait=10)
    for service in (*nodes, operator):
        service.db.dispose()
    pg_database(f"{name}_old", template=name)  # an older backup of the same store
    operator.enable_maintenance("pg two", enabled_by="ops", wait=10)
    operator.disable_maintenance("ops", wait=10)
    seen = operator.state.load().version

    # The database is dropped and created again, empty; a new process comes up.
    for service in (*nodes, operator):
        service.db.dispose()
    pg_database(name)
    fresh = make_service(kind="cli", register=False, database_url=url)
    assert read_record(fresh.db).empty  # auto-migrate did not create a store
    with pytest.raises(StoreMismatch, match=f"fleet has seen version {seen}"):
        fresh.enable_maintenance("x", enabled_by="ops", wait=0)
    status = fresh.get_maintenance_status()
    assert status.degraded and "empty" in (status.degraded_reason or "")
    assert read_record(fresh.db).empty

    # Restored from the older backup instead: same store, older version.
    fresh.db.dispose()
    pg_database(name, template=f"{name}_old")
    restored = make_service(kind="cli", register=False, database_url=url)
    with pytest.raises(StoreMismatch, match="rolled back"):
        restored.disable_maintenance("ops", wait=0)
    assert restored.state.load().version < seen

    result = restored.adopt_store("ops", "restored from backup", wait=10)
    assert result is not None and result.status.version == seen + 1
    assert result.propagation == "fenced" and len(result.applied_nodes) == 2
    assert not restored.get_maintenance_status().is_active  # the fleet's status came along
    restored.enable_maintenance("after adoption", enabled_by="ops", wait=10)
    assert all(n.status.reason == "after adoption" for n in nodes)


def test_with_redis_unreachable_the_process_remembers_its_store_and_version(
    settings: Settings,
    make_service: Callable[..., EnhancedMaintenanceModeService],
    tmp_path: Path,
) -> None:
    from maintenance.embedded import free_port
    from maintenance.record import RecordGuard
    from maintenance.redisconn import make_client
    from maintenance.store.database import Database
    from maintenance.store.migrations import upgrade

    service = make_service(kind="web").start()
    service.enable_maintenance("known", enabled_by="ops", wait=0)
    seen = service.status.version
    nowhere = make_client(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    guard = RecordGuard(service.db, nowhere, service.keys, local_version=lambda: seen)
    assert guard.check(0).ok  # Redis cannot be asked: the store matches what it knew
    assert not guard.fleet().reachable

    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    upgrade(other.engine)
    guard.db = other  # the URL now reaches another store (version 0, another identity)
    verdict = guard.check(0)
    assert not verdict.ok and "is not the fleet's" in (verdict.reason or "")
    other.dispose()


def test_a_process_losing_the_first_claim_to_a_writer_judges_the_store_afresh(
    make_service: Callable[..., EnhancedMaintenanceModeService],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two processes on a new deployment: the one that loses the claim of the store
    does so to a process that may already have written a newer version; it must read
    SQL again, not call its older read a rollback (seen as a flaky two-admin race)."""
    winner, loser = make_service(kind="web"), make_service(kind="web")
    claim = loser.record._claim

    def claim_after_the_winner_wrote(identity: StoreIdentity) -> Any:
        # Between the loser's SQL read and its claim, the winner claims and writes.
        winner.enable_maintenance("first", "10m", enabled_by="alice", wait=0)
        return claim(identity)

    monkeypatch.setattr(loser.record, "_claim", claim_after_the_winner_wrote)
    verdict = loser.record.check(0)
    assert verdict.ok, verdict.reason
    assert winner.state.load().version == 1
