"""Consistency checks: run when maintenance ends (once per fleet), results in the event log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from maintenance import EnhancedMaintenanceModeService
from maintenance.integrity import (
    CheckRegistry,
    check_results,
    run_checks,
    run_checks_when_maintenance_ends,
)
from tests.helpers import wait_for

from .models import Account, Note


def notes_have_accounts(session: Session) -> list[str]:
    """Every note belongs to an existing account."""
    orphans = session.scalars(
        select(Note.id)
        .outerjoin(Account, Note.account_id == Account.id)
        .where(Account.id.is_(None))
    ).all()
    return [f"note {n} has no account" for n in orphans]


def accounts_named(engine: Engine) -> list[str]:
    """Accounts have names."""
    with engine.connect() as conn:
        rows = conn.execute(select(Account.id).where(Account.name == "")).all()
    return [f"account {r.id} has no name" for r in rows]


@pytest.fixture
def checks(app_engine: Engine) -> CheckRegistry:
    registry = CheckRegistry()
    registry.register("notes_have_accounts", notes_have_accounts, bind=sessionmaker(app_engine))
    registry.register("accounts_named", accounts_named, bind=app_engine)
    return registry


@pytest.fixture
def runners() -> Iterator[list]:
    made: list = []
    yield made
    for runner in made:
        runner.disconnect()


def test_checks_run_when_maintenance_is_disabled_and_results_are_logged(
    control: EnhancedMaintenanceModeService, app_engine: Engine, checks: CheckRegistry, runners
) -> None:
    """disable_maintenance returns with every check's result in the event log of that activation."""
    with Session(app_engine) as s:
        s.add_all([Account(id=1, name="a"), Note(account_id=1, text="ok"), Note(text="orphan")])
        s.commit()
    runners.append(run_checks_when_maintenance_ends(control, checks))
    control.enable_maintenance("Database upgrade", enabled_by="ops")
    activation = control.status.activation_id
    control.disable_maintenance("ops")

    results = {r["check"]: r for r in check_results(control, activation)}
    assert set(results) == {"notes_have_accounts", "accounts_named"}
    assert results["accounts_named"]["ok"] is True
    orphan = results["notes_have_accounts"]
    assert orphan["ok"] is False
    assert orphan["problems"] == ["note 2 has no account"]
    assert orphan["trigger"] == "maintenance_ended"
    assert orphan["description"] == "Every note belongs to an existing account."
    event = control.history(10, kinds=("consistency_check",), activation_id=activation)
    assert {e.reason for e in event} == {None, "note 2 has no account"}


def test_every_node_sees_the_end_but_the_fleet_runs_the_checks_once(
    control: EnhancedMaintenanceModeService,
    make_service,
    tmp_path,
    checks: CheckRegistry,
    runners,
) -> None:
    """Two nodes with checks: the disabler runs them, the other node's claim loses."""
    other = make_service(database_url=f"sqlite:///{tmp_path / 'control.db'}", kind="web").start()
    runners.append(run_checks_when_maintenance_ends(control, checks))
    watcher = run_checks_when_maintenance_ends(other, checks)
    runners.append(watcher)
    control.enable_maintenance("Database upgrade", enabled_by="ops", wait=5)
    wait_for(lambda: other.status.is_active, 5, what="the other node to see maintenance")
    activation = control.status.activation_id
    control.disable_maintenance("ops", wait=5)
    wait_for(lambda: activation in watcher._done, 5, what="the other node to see the end")
    assert len(check_results(control, activation)) == 2
    assert watcher.last_report is None


def test_a_node_that_only_sees_the_status_change_runs_the_checks(
    control: EnhancedMaintenanceModeService, make_service, tmp_path, checks: CheckRegistry, runners
) -> None:
    """Maintenance disabled elsewhere (a CLI with no checks): a web node runs them."""
    cli = make_service(
        database_url=f"sqlite:///{tmp_path / 'control.db'}", kind="cli", register=False
    )
    runners.append(run_checks_when_maintenance_ends(control, checks))
    cli.enable_maintenance("Database upgrade", enabled_by="ops", wait=5)
    wait_for(lambda: control.status.is_active, 5, what="the web node to see maintenance")
    activation = cli.status.activation_id
    cli.disable_maintenance("ops", wait=5)
    found = wait_for(lambda: check_results(control, activation), 10, what="checks on the web node")
    assert {r["trigger"] for r in found} == {"maintenance_ended"}


def test_a_check_that_raises_is_a_failed_result(control: EnhancedMaintenanceModeService) -> None:
    """A broken check does not stop the others; it is reported with its error."""
    registry = CheckRegistry()

    def broken(_service: object) -> list[str]:
        raise RuntimeError("table missing")

    registry.register("broken", broken)
    registry.register("fine", lambda service: [])
    report = run_checks(control, checks=registry, record=False)
    assert [r.name for r in report.failed] == ["broken"]
    assert report.failed[0].error == "RuntimeError: table missing"
    assert not report.ok
    assert control.history(5, kinds=("consistency_check",)) == []
