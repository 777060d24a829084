"""The behaviours that depend on the broker or the pool, once per (broker, pool) cell.

A compact scenario, not the whole suite times ten: refusal (nothing reaches the
broker), deferral on receipt, tracking and drain, requeue exactly once, cooperative
abort, and termination -- or, where the pool cannot stop a running job, the honest
report of it. ``docs/celery.md`` (Pools and limits) cites these tests per pool.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid

import pytest
from celery import Celery, chain
from celery.events.state import State

from maintenance.emergency import DeactivationRefused
from maintenance.job_registry import JobRegistry
from maintenance.store.jobs import DEFERRED, REQUEUED, JobStore
from signals import EXIT_REFUSED, PublishRefused
from tests.celery.conftest import ROOT, watch_events
from tests.emergency.conftest import hold_id, labels
from tests.helpers import wait_for
from workers import EmergencyMaintenanceHandler, request_abort
from workers.drain import wait_for_drain
from workers.emergency.stopped import STOPPED_STATE
from workers.requeue import requeue_jobs

from .conftest import TERMINATES, Cell

pytestmark = pytest.mark.slow


def _ungated(cell: Cell) -> Celery:
    """A publisher without the hooks: what an old deploy or a foreign process sends."""
    app = Celery("ungated", set_as_current=False)
    app.conf.update(cell.fleet.config)
    return app


def test_refusal_and_deferral(cell: Cell) -> None:
    """The worker is a fenced node; every publish path is refused with nothing sent;
    a blocked message that got in anyway is deferred on receipt, an allowed one runs."""
    cell.reset()
    fleet = cell.fleet
    service = fleet.service
    result = service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    assert result.fenced
    assert cell.worker.nodename in {n.info.get("hostname") for n in service.nodes().values()}

    probe = f"{cell.queue}-probe-{uuid.uuid4().hex[:4]}"
    caption, step = fleet.tasks["generate_caption"], fleet.tasks["step"]
    paths = {
        "delay": lambda: caption.apply_async(("refused",), queue=probe),
        "send_task": lambda: fleet.app.send_task(
            "images.optimize_image", ("refused",), queue=probe
        ),
        "chain": lambda: chain(
            caption.si("refused").set(queue=probe), step.s("refused").set(queue=probe)
        ).apply_async(),
    }
    try:
        for name, publish in paths.items():
            with pytest.raises(PublishRefused):
                publish()
            assert cell.broker.queue_length(probe) == 0, name
        if cell.pool == "prefork":  # a publisher-side path: once per broker is enough
            # ``tests.celery.app``: the first app configured from ``celeryconfig`` in the
            # process (a second one, as ``tests.emergency.app`` makes, gets no hooks from it).
            shell = subprocess.run(
                [
                    *(sys.executable, "-m", "celery", "-A", "tests.celery.app", "call"),
                    *("captions.generate_caption", "--args", '["refused"]', "--queue", probe),
                ],
                cwd=ROOT,
                env=fleet.env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert shell.returncode == EXIT_REFUSED, shell.stderr
            assert "db upgrade" in shell.stderr and "Traceback" not in shell.stderr
            assert cell.broker.queue_length(probe) == 0, "celery call"
    finally:
        cell.broker.delete_queue(probe)

    names = labels("blocked", "allowed")
    blocked_id = (
        _ungated(cell)
        .send_task("captions.generate_caption", (names["blocked"],), queue=cell.queue)
        .id
    )
    fleet.tasks["build_report"].apply_async((names["allowed"],), queue=cell.queue)
    store = JobStore(service.db)
    wait_for(lambda: store.get(blocked_id) is not None, timeout=20, what="deferred on receipt")
    wait_for(lambda: fleet.runs(names["allowed"]) == 1, timeout=20, what="allowed job ran")
    record = store.get(blocked_id)
    assert record is not None and record.state == DEFERRED and record.queue == cell.queue
    assert fleet.runs(names["blocked"]) == 0


def test_tracking_and_drain(cell: Cell) -> None:
    """A running job is listed with its worker; the drain waits for it and ends with it."""
    cell.reset()
    fleet, ef = cell.fleet, cell.ef
    service = fleet.service
    label, hold = labels("tracked")["tracked"], hold_id()
    task_id = ef.start("stubborn", label, hold, "m1")
    registry = JobRegistry(service.redis, service.keys)
    wait_for(lambda: task_id in registry.all(), timeout=10, what="job listed")
    assert registry.all()[task_id].worker == cell.worker.nodename
    service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    assert not wait_for_drain(timeout=0.5, service=service)
    fleet.release(hold)
    assert wait_for_drain(timeout=30, service=service)
    assert task_id not in registry.all() and ef.count("runs", label) == 1


def test_requeue_exactly_once(cell: Cell) -> None:
    """Deferred jobs are requeued by the disable and run once each; recoveries after it
    publish nothing more. On the prefork cells (events are a broker matter, sent by the
    worker main process whatever the pool) the event stream Flower reads shows them
    DEFERRED, then -- requeued under their own ids -- SUCCESS."""
    cell.reset()
    fleet = cell.fleet
    service = fleet.service
    store = JobStore(service.db)
    names = list(labels("a", "b", "c").values())
    with contextlib.ExitStack() as stack:
        events = stack.enter_context(watch_events(fleet)) if cell.pool == "prefork" else None
        service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
        ungated = _ungated(cell)
        ids = [
            ungated.send_task("captions.generate_caption", (n,), queue=cell.queue).id for n in names
        ]
        wait_for(
            lambda: all(store.get(i) is not None for i in ids), timeout=20, what="three deferred"
        )
        if events is not None:
            wait_for(lambda: _states(events, ids) == {"DEFERRED"}, timeout=20, what="DEFERRED")
        service.disable_maintenance("ops")
        wait_for(lambda: all(fleet.runs(n) == 1 for n in names), timeout=30, what="each ran")
        if events is not None:
            wait_for(lambda: _states(events, ids) == {"SUCCESS"}, timeout=20, what="SUCCESS")
            wait_for(
                lambda: all(getattr(events.tasks[i], "requeued_id", None) == i for i in ids),
                timeout=20,
                what="the requeue in the event state",
            )
    records = [store.get(i) for i in ids]
    assert all(
        r is not None and r.state == REQUEUED and r.requeued_id == r.original_id for r in records
    )
    for actor in ("recover", "recover-again"):
        assert not requeue_jobs(fleet.app, service, actor=actor).requeued
    wait_for(lambda: cell.broker.queue_length(cell.queue) == 0, timeout=10, what="queue empty")
    assert [fleet.runs(n) for n in names] == [1, 1, 1]


def _states(events: State, ids: list[str]) -> set[str | None]:
    return {events.tasks[i].state if i in events.tasks else None for i in ids}


def test_cooperative_abort(cell: Cell) -> None:
    """A job polling ``should_abort()`` stops when asked, without completing its work,
    and is recorded as stopped (outcome ``aborted``) for a later requeue; the result
    backend says ``STOPPED`` with the reason."""
    cell.reset()
    fleet, ef = cell.fleet, cell.ef
    label, hold = labels("coop")["coop"], hold_id()
    task_id = ef.start("cooperative", label, hold, "m1")
    request_abort(fleet.service, task_id)
    wait_for(lambda: ef.count("aborted", label) == 1, timeout=20, what="job stopped itself")
    store = JobStore(fleet.service.db)
    wait_for(lambda: store.get(task_id) is not None, timeout=20, what="stopped job recorded")
    record = store.get(task_id)
    assert record is not None and record.outcome == "aborted"
    assert ef.count("runs", label) == 0
    # Whatever the pool, the job ends STOPPED with its reason, not SUCCESS.
    result = fleet.app.AsyncResult(task_id)
    assert result.state == STOPPED_STATE
    assert result.result["outcome"] == "aborted" and result.result["reason"] == record.reason
    fleet.release(hold)


def test_termination_or_honest_report(cell: Cell) -> None:
    """In an emergency a job ignoring ``should_abort()`` is terminated where the pool can
    (and runs again once after the lift); elsewhere it is reported as unterminable, stays
    listed as running, and the lift is refused until it ends."""
    cell.reset()
    fleet, ef = cell.fleet, cell.ef
    label, hold = labels("stubborn")["stubborn"], hold_id()
    task_id = ef.start("stubborn", label, hold, "m1")
    # Prefork: a job that ignores SIGTERM too, for the SIGKILL step (on RabbitMQ, its
    # message must not come back when the pool reports the lost child).
    deaf = labels("unkillable")["unkillable"] if cell.pool == "prefork" else None
    deaf_id = ef.start("unkillable", deaf, hold, "m1") if deaf else None
    handler = EmergencyMaintenanceHandler(fleet.service, fleet.app)
    handler.activate_emergency_mode("disk failing", "bob", 0.5, 1.0, watch=False)
    # The same timing: a worker that cannot terminate ends its round at once, and a
    # round already ended is followed by a new one with the timing given here.
    result = handler.terminate_running_jobs(0.5, 1.0, timeout=30)
    assert result.finished
    if cell.pool in TERMINATES:
        outcomes = {
            j["original_id"]: outcome
            for outcome in ("terminated", "killed")
            for j in result.by_outcome.get(outcome, [])
        }
        expected = {task_id: "terminated", **({deaf_id: "killed"} if deaf_id else {})}
        assert outcomes == expected and not result.unterminable
        fleet.release(hold)
        lifted = handler.deactivate_emergency_mode("bob")
        assert lifted.check.ok
        stopped = [label, *([deaf] if deaf else [])]
        wait_for(
            lambda: all(ef.count("runs", lb) == 1 for lb in stopped),
            timeout=30,
            what="rerun after the lift",
        )
        wait_for(lambda: cell.broker.queue_length(cell.queue) == 0, timeout=10, what="drained")
        # Stopped once, then ran once to completion.
        assert [ef.count("starts", lb) for lb in stopped] == [2] * len(stopped)
        assert [ef.count("runs", lb) for lb in stopped] == [1] * len(stopped)
    else:
        assert result.unterminable == [
            {"task_id": task_id, "worker": cell.worker.nodename, "pool": cell.pool}
        ]
        assert [r["task_id"] for r in result.still_running] == [task_id]
        with pytest.raises(DeactivationRefused) as refused:
            handler.deactivate_emergency_mode("bob")
        assert any(task_id in p for p in refused.value.check.problems)
        fleet.release(hold)
        wait_for(lambda: ef.count("runs", label) == 1, timeout=20, what="job ran to its end")
        lifted = handler.deactivate_emergency_mode("bob")
        assert lifted.check.ok and ef.count("starts", label) == 1
