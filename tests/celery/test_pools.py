"""Other pools: solo and threads workers are registered nodes and defer on receipt."""

from __future__ import annotations

import uuid

import pytest
from celery import Celery

from maintenance.store.jobs import DEFERRED, JobStore
from tests.helpers import wait_for

from .conftest import Fleet

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_solo_and_threads_workers_gate_too(clean_fleet: Fleet, pool: str):
    """The worker main process is a fenced node (the solo pool sends worker_process_init
    in it), blocked messages are deferred, unblocked ones run and are tracked."""
    fleet = clean_fleet
    name = f"{pool}1"
    queue = f"{fleet.prefix}-{pool}-{uuid.uuid4().hex[:6]}"
    worker = fleet.start_worker(name, [queue], pool=pool)
    try:
        result = fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
        workers = {n.info.get("hostname") for n in fleet.service.nodes().values()}
        assert worker.nodename in workers and result.fenced
        ungated = Celery("ungated", set_as_current=False)
        ungated.conf.update(fleet.config)
        blocked, allowed = f"{pool}-blocked", f"{pool}-report-{uuid.uuid4().hex[:4]}"
        task_id = ungated.send_task("captions.generate_caption", (blocked,), queue=queue).id
        fleet.tasks["build_report"].apply_async((allowed,), queue=queue)
        store = JobStore(fleet.service.db)
        wait_for(lambda: store.get(task_id) is not None, timeout=20, what="deferred")
        wait_for(lambda: fleet.runs(allowed) == 1, timeout=20, what="report ran")
        record = store.get(task_id)
        assert record is not None and record.state == DEFERRED and fleet.runs(blocked) == 0
    finally:
        worker.stop()
        del fleet.workers[name]
