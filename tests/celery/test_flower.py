"""A real Flower process shows held-back jobs as DEFERRED and their recovery as REQUEUED."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from maintenance.store.jobs import DEFERRED, REQUEUED, JobStore
from tests.helpers import wait_for

from .conftest import Fleet
from .flower import running_flower, task_info, task_state, wait_until_listening

pytestmark = pytest.mark.slow


@pytest.fixture
def flower(fleet: Fleet) -> Iterator[str]:
    """``celery flower`` on the fleet's broker (``running_flower``)."""
    with running_flower(fleet) as base:
        yield base


def test_flower_shows_deferred_then_success_under_the_same_id(clean_fleet: Fleet, flower: str):
    """Deferred jobs show as DEFERRED (with why) in a real Flower process; the recovery
    requeues them under their own ids, which Flower then shows SUCCESS with their
    results (the custom states do not outrank it)."""
    fleet = clean_fleet
    caption = fleet.tasks["generate_caption"]
    wait_until_listening(flower, lambda label: str(caption.apply_async((label,)).id))

    queue = f"{fleet.prefix}-flower-{uuid.uuid4().hex[:6]}"
    labels = [f"fl-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
    ids = [caption.apply_async((label,), queue=queue).id for label in labels]
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    names = [w.nodename for w in fleet.workers.values()]
    fleet.app.control.add_consumer(queue, destination=names, reply=True, timeout=5)
    try:
        store = JobStore(fleet.service.db)
        wait_for(lambda: len(store.find(DEFERRED)) == 3, 30, what="3 deferred")
        wait_for(
            lambda: all(task_state(flower, i) == "DEFERRED" for i in ids),
            30,
            0.2,
            "DEFERRED in Flower",
        )
        fleet.service.disable_maintenance("ops")  # requeues in this process
        wait_for(lambda: all(fleet.runs(label) == 1 for label in labels), 60, what="all ran")
        requeued = {r.original_id: r.requeued_id for r in store.find(REQUEUED)}
        assert requeued == {i: i for i in ids}
        wait_for(
            lambda: all(task_state(flower, i) == "SUCCESS" for i in ids),
            30,
            0.2,
            "SUCCESS in Flower",
        )
        for task_id, label in zip(ids, labels, strict=True):
            info = task_info(flower, task_id)
            assert info["state"] == "SUCCESS"
            assert label in str(info["result"])  # the job's own result, not a requeue note
    finally:
        fleet.app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)
