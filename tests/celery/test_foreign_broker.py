"""A recovery publishes each held-back job to the broker it came from, or not at all.

The workers run an app whose broker is another Redis database than the one the CLI's
default (``celeryconfig`` from the environment) reaches. Without ``CELERY_APP`` the
recovery refuses (exit 1, one line naming the setting) and publishes nothing; with it,
each job runs exactly once on those workers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from celery import Celery

import signals
from maintenance.store.jobs import DEFERRED, REQUEUED, JobStore
from tests.helpers import wait_for
from workers.routing import broker_of

from .conftest import Fleet, close_fleet, delete_prefix, fleet_environment, open_fleet
from .foreign_app import make_foreign_app

pytestmark = pytest.mark.slow
FOREIGN_DB = 11


def _other_database(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.port:
        return None
    return urlunsplit(parts._replace(path=f"/{FOREIGN_DB}"))


@pytest.fixture
def foreign(tmp_path: Path) -> Iterator[tuple[Fleet, Celery]]:
    prefix = f"tf{uuid.uuid4().hex[:8]}"
    env = fleet_environment(tmp_path, prefix)
    broker = _other_database(env["CELERY_BROKER_URL"])
    if broker is None:
        pytest.skip(f"needs a redis://host:port broker to pick another database of: {env}")
    env["FOREIGN_BROKER_URL"] = broker
    fleet = open_fleet(env, app_module="tests.celery.foreign_app")
    # Celery reads $CELERY_BROKER_URL before any app's own setting: the workers and the
    # CLI get none (the CLI's default then is celeryconfig's: $REDIS_URL, database 0).
    del fleet.env["CELERY_BROKER_URL"]
    publisher = make_foreign_app(broker, fleet.config)
    signals.install(publisher, fleet.service)
    fleet.app.close()
    fleet.app = publisher  # readiness pings go where the workers listen
    try:
        yield fleet, publisher
    finally:
        close_fleet(fleet)
        publisher.close()
        delete_prefix(env["REDIS_URL"], prefix)
        delete_prefix(broker, prefix)


def _recover(fleet: Fleet, **env: str) -> tuple[int, str]:
    saved = dict(fleet.env)
    fleet.env.pop("CELERY_APP", None)
    fleet.env.update(env)
    try:
        proc = fleet.cli("recover", "--by", "ops")
        out, err = proc.communicate(timeout=120)
    finally:
        fleet.env.clear()
        fleet.env.update(saved)
    return proc.returncode, out + err


def test_recovery_refuses_another_broker_and_publishes_there_with_celery_app(
    foreign: tuple[Fleet, Celery],
) -> None:
    fleet, publisher = foreign
    queue = f"{fleet.prefix}-foreign"
    labels = [f"f{i}-{uuid.uuid4().hex[:4]}" for i in range(3)]
    ids = [
        publisher.send_task("captions.generate_caption", args=(label,), queue=queue).id
        for label in labels
    ]
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops", wait=5)
    fleet.start_worker("f1", [queue])
    store = JobStore(fleet.service.db)
    wait_for(lambda: len(store.find(DEFERRED)) == 3, timeout=30, what="3 deferred")
    records = {r.original_id: r for r in store.find(DEFERRED)}
    assert set(records) == set(ids)
    here = broker_of(publisher)
    assert here is not None and f"/{FOREIGN_DB}" in here
    assert {r.options.get("broker") for r in records.values()} == {here}
    fleet.service.disable_maintenance("ops", requeue=False)

    code, output = _recover(fleet)
    assert code == 1, output
    lines = [line for line in output.splitlines() if "CELERY_APP" in line]
    assert len(lines) == 1, output
    line = lines[0]
    assert here in line
    assert {r.state for r in store.find(limit=None)} == {DEFERRED}
    assert fleet.queue_length(queue) == 0  # nothing went to the default broker
    assert all(fleet.runs(label) == 0 for label in labels)

    code, output = _recover(fleet, CELERY_APP="tests.celery.foreign_app")
    assert code == 0, output
    wait_for(lambda: all(fleet.runs(label) == 1 for label in labels), 60, what="each ran")
    assert {r.state for r in store.find(limit=None)} == {REQUEUED}
    assert all(fleet.runs(label) == 1 for label in labels)
