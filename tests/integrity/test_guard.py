"""The transaction guard against real SQLite and PostgreSQL: refused writes leave nothing behind."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from maintenance import EnhancedMaintenanceModeService, OperationBlocked, OperationType
from maintenance.attempts import logged_attempts
from maintenance.integrity import allow_writes, guard_session, job_writes

from .models import Account, Audit, Note, count

MODELS = {Account: "user_data_modification", "it_notes": OperationType.CAPTION_GENERATION}
ADMIN = {"username": "root", "role": "admin"}
USER = {"username": "alice", "role": "user"}


def _guarded(control: EnhancedMaintenanceModeService, engine: Engine, **kw) -> sessionmaker:  # type: ignore[no-untyped-def]
    sessions = sessionmaker(engine, expire_on_commit=False)
    guard_session(sessions, control, MODELS, **kw)
    return sessions


def _fresh_counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return count(s, Account), count(s, Note), count(s, Audit)


def test_transaction_spanning_enable_is_rolled_back_entirely_and_logged(
    control: EnhancedMaintenanceModeService, app_engine: Engine
) -> None:
    """Rows flushed before maintenance and a blocked row after it: commit refuses, nothing stays."""
    sessions = _guarded(control, app_engine, user=lambda: USER)
    session = sessions()
    session.add(Account(name="before"))
    session.add(Audit(what="unguarded table"))
    session.flush()
    control.enable_maintenance("Database upgrade", "10m", enabled_by="ops")
    session.add(Note(text="after"))
    with pytest.raises(OperationBlocked) as refused:
        session.commit()
    assert refused.value.operation is OperationType.USER_DATA_MODIFICATION
    assert "Database upgrade" in refused.value.message
    assert not session.in_transaction()  # rolled back, not left half-open
    assert _fresh_counts(app_engine) == (0, 0, 0)

    event = control.history(5, kinds=("data_modification_refused",))[0]
    assert event.actor == "alice"
    assert event.details["tables"]["it_accounts"] == {"INSERT": 1}
    assert event.details["phase"] == "commit"
    control.attempts.flush()
    rows = logged_attempts(control, control.status.activation_id)
    assert {(r["channel"], r["endpoint"], r["operation"]) for r in rows} >= {
        ("data", "it_accounts", "user_data_modification")
    }
    session.add(Audit(what="a new transaction on an unguarded table"))
    session.commit()
    assert _fresh_counts(app_engine) == (0, 0, 1)


def test_blocked_flush_rolls_back_rows_flushed_earlier(
    control: EnhancedMaintenanceModeService, app_engine: Engine
) -> None:
    """During maintenance a blocked flush undoes the whole transaction, not just itself."""
    sessions = _guarded(control, app_engine)
    control.enable_maintenance("Database upgrade", enabled_by="ops")
    with sessions() as session:
        session.add(Audit(what="first"))
        session.flush()
        session.add(Note(text="blocked"))
        with pytest.raises(OperationBlocked):
            session.flush()
        assert not session.in_transaction()
    assert _fresh_counts(app_engine) == (0, 0, 0)


def test_admin_write_commits_during_maintenance(
    control: EnhancedMaintenanceModeService, app_engine: Engine
) -> None:
    """An admin (service.bypass) writes guarded tables while users are refused."""
    sessions = _guarded(control, app_engine)
    control.enable_maintenance("Database upgrade", enabled_by="ops")
    with control.bypass(ADMIN), sessions() as session:
        session.add(Account(name="by admin"))
        session.add(Note(text="by admin"))
        session.commit()
    assert _fresh_counts(app_engine) == (1, 1, 0)
    assert control.history(5, kinds=("data_modification_refused",)) == []


def test_user_callable_decides_who_writes(
    control: EnhancedMaintenanceModeService, sqlite_app_engine: Engine
) -> None:
    """The guard asks ``user()`` who is writing: the admin's write passes, the user's does not."""
    who = {"current": ADMIN}
    sessions = _guarded(control, sqlite_app_engine, user=lambda: who["current"])
    control.enable_maintenance("Database upgrade", enabled_by="ops")
    with sessions() as session:
        session.add(Account(name="admin"))
        session.commit()
        who["current"] = USER
        session.add(Account(name="user"))
        with pytest.raises(OperationBlocked):
            session.commit()
    assert _fresh_counts(sqlite_app_engine) == (1, 0, 0)


def test_job_started_before_maintenance_continues_in_normal_not_in_emergency(
    control: EnhancedMaintenanceModeService, sqlite_app_engine: Engine
) -> None:
    """Writes of a job that started while maintenance was off are a continuation."""
    sessions = _guarded(control, sqlite_app_engine)
    control.enable_maintenance("Database upgrade", enabled_by="ops")
    with job_writes("job-1", activation_id=None), sessions() as session:
        session.add(Note(text="finishing"))
        session.commit()
    started_now = control.status.activation_id
    with job_writes("job-2", activation_id=started_now), sessions() as session:
        session.add(Note(text="new work"))
        with pytest.raises(OperationBlocked):
            session.commit()
    control.enable_maintenance("Outage", mode="emergency", enabled_by="ops")
    with job_writes("job-1", activation_id=None), sessions() as session:
        session.add(Note(text="cut off"))
        with pytest.raises(OperationBlocked):
            session.commit()
    assert _fresh_counts(sqlite_app_engine) == (0, 1, 0)


def test_allow_writes_and_test_mode_let_writes_through(
    control: EnhancedMaintenanceModeService, sqlite_app_engine: Engine
) -> None:
    """``allow_writes`` is an explicit escape; TEST mode records would-blocks and blocks nothing."""
    sessions = _guarded(control, sqlite_app_engine, user=lambda: USER)
    control.enable_maintenance("Database upgrade", enabled_by="ops")
    with allow_writes("repair script"), sessions() as session:
        session.add(Note(text="repair"))
        session.commit()
    control.disable_maintenance("ops")
    control.enable_maintenance("Rehearsal", mode="test", enabled_by="ops")
    with sessions() as session:
        session.add(Account(name="rehearsed"))
        session.commit()
    assert _fresh_counts(sqlite_app_engine) == (1, 1, 0)
    control.attempts.flush()
    rows = logged_attempts(control, control.status.activation_id)
    assert [(r["channel"], r["would_block"], r["endpoint"]) for r in rows] == [
        ("data", True, "it_accounts")
    ]


def test_session_class_guard_keeps_refusing_until_rolled_back(
    control: EnhancedMaintenanceModeService, sqlite_app_engine: Engine
) -> None:
    """Guarding a Session class (no sessionmaker): a caller that ignores the refusal and
    commits again is refused again, and the rollback leaves the table empty."""

    class AppSession(Session):
        pass

    guard = guard_session(AppSession, control, MODELS)
    try:
        session = AppSession(sqlite_app_engine)
        session.add(Account(name="before"))
        session.flush()
        control.enable_maintenance("Database upgrade", enabled_by="ops")
        for _ in range(2):
            with pytest.raises(OperationBlocked):
                session.commit()
        session.rollback()
        session.close()
    finally:
        guard.remove()
    assert _fresh_counts(sqlite_app_engine) == (0, 0, 0)
    assert len(control.history(10, kinds=("data_modification_refused",))) == 1


def test_begin_block_is_rolled_back_when_its_commit_is_refused(
    control: EnhancedMaintenanceModeService, sqlite_app_engine: Engine
) -> None:
    """``with sessions.begin():`` commits on exit; a refused commit rolls the block back."""
    sessions = _guarded(control, sqlite_app_engine)
    control.enable_maintenance("Database upgrade", enabled_by="ops")
    with pytest.raises(OperationBlocked), sessions.begin() as session:
        session.add(Audit(what="unguarded"))
        session.add(Account(name="blocked"))
    assert _fresh_counts(sqlite_app_engine) == (0, 0, 0)
    assert len(control.history(5, kinds=("data_modification_refused",))) == 1
