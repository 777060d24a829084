"""A real Flower process shows held-back jobs as DEFERRED and their recovery as REQUEUED."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from maintenance.store.jobs import DEFERRED, REQUEUED, JobStore
from tests.helpers import wait_for
from tests.services import free_port

from .conftest import ROOT, Fleet

pytestmark = pytest.mark.slow


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


@pytest.fixture
def flower(fleet: Fleet) -> Iterator[str]:
    """``celery flower`` on the fleet's broker, its HTTP API on a loopback port."""
    port = free_port()
    log = fleet.directory / "flower.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            fleet.app_module,
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
        ],
        cwd=ROOT,
        env={**fleet.env, "FLOWER_UNAUTHENTICATED_API": "true"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{base}/api/tasks") is not None, 60, 0.2, "Flower's API")
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _flower_state(base: str, task_id: str) -> str | None:
    info = _get(f"{base}/api/task/info/{task_id}")
    return info.get("state") if isinstance(info, dict) else None


def test_flower_shows_deferred_then_requeued_with_the_new_id(clean_fleet: Fleet, flower: str):
    """Deferred jobs show as DEFERRED (with why) in a real Flower process; after the
    recovery their old ids show REQUEUED and name the new id, which runs."""
    fleet = clean_fleet
    caption = fleet.tasks["generate_caption"]
    # Flower follows events over pub/sub, and its API answers before its event consumer
    # listens: a probe job it saw succeed proves it is listening (sent again until seen).
    probes: list[str] = []

    def flower_saw_a_probe() -> bool:
        if any(_flower_state(flower, p) == "SUCCESS" for p in probes):
            return True
        if len(probes) < 60:
            probes.append(caption.apply_async((f"probe-{uuid.uuid4().hex[:6]}",)).id)
        return False

    wait_for(flower_saw_a_probe, 60, 0.5, "Flower live")

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
            lambda: all(_flower_state(flower, i) == "DEFERRED" for i in ids),
            30,
            0.2,
            "DEFERRED in Flower",
        )
        fleet.service.disable_maintenance("ops")  # requeues in this process
        wait_for(lambda: all(fleet.runs(label) == 1 for label in labels), 60, what="all ran")
        requeued = {r.original_id: r.requeued_id for r in store.find(REQUEUED)}
        wait_for(
            lambda: all(_flower_state(flower, i) == "REQUEUED" for i in ids),
            30,
            0.2,
            "REQUEUED in Flower",
        )
        for old in ids:
            info = _get(f"{flower}/api/task/info/{old}")
            assert info["result"] == f"requeued as {requeued[old]}"  # the link to the new id
            assert _flower_state(flower, requeued[old]) in {"RECEIVED", "STARTED", "SUCCESS"}
    finally:
        fleet.app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5)
