"""A rehearsal of a real fleet: a waitress web process with the middleware, a worker with the
hooks and -- in the failing run -- a worker started without them and a publisher without
the gate, all on one broker. The report must count exactly what the test sent when every
node is hooked, and fail naming the hook-less worker and publisher otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from maintenance import OperationType
from maintenance.embedded import free_port
from maintenance.rehearsal import build_test_report
from maintenance.reports import load_report, render
from tests.helpers import wait_for

from .app import make_app
from .conftest import (
    HOST,
    ROOT,
    Fleet,
    WorkerProcess,
    close_fleet,
    delete_prefix,
    fleet_environment,
    open_fleet,
)

Op = OperationType
HTTP_REQUESTS = 3
GATED_PUBLISHES = 2
UNGATED_PUBLISHES = 2


class WebProcess:
    """``python -m tests.celery.web_node``: the web tests' app behind waitress."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.celery.web_node", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"web process exited:\n{self.log.read_text(errors='replace')}")
        try:
            return requests.get(f"{self.url}/health", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def rehearsal_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, WebProcess]]:
    """A fleet of its own: this process (gated publisher, operator), worker ``rh1`` with the
    hooks on the default queue, a web process with the middleware."""
    prefix = f"tr{uuid.uuid4().hex[:8]}"
    env = fleet_environment(tmp_path_factory.mktemp("rehearsal-fleet"), prefix)
    env["MAINTENANCE_ENABLE_WAIT"] = "2.0"  # also the grace before a stampless publish counts
    fleet = open_fleet(env, kind="app")
    web = WebProcess(env, fleet.directory / "web.log")
    try:
        fleet.start_worker("rh1", [fleet.default_queue], pool="solo")
        wait_for(web.answers, timeout=60, interval=0.2, what="web process answering")
        wait_for(
            lambda: any(
                n.kind == "web" and "http" in n.info.get("hooks", [])
                for n in fleet.service.nodes().values()
            ),
            timeout=30,
            what="web node registered with its request gate",
        )
        yield fleet, web
    finally:
        web.stop()
        close_fleet(fleet)
        delete_prefix(env["REDIS_URL"], prefix)


def start_plain_worker(fleet: Fleet, queue: str) -> WorkerProcess:
    """A worker of a plain Celery app (no hooks) on the fleet's broker; ready once it answers."""
    env = {k: v for k, v in fleet.env.items() if k != "TEST_CELERY_WORKER"}
    log = fleet.directory / "plain.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery.plain",
            "worker",
            "-P",
            "solo",
            "-n",
            "plain@%h",
            "--without-mingle",
            "--without-gossip",
            "-Q",
            queue,
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = WorkerProcess("plain", proc, log)

    def answers() -> bool:
        if not worker.alive():
            raise AssertionError(f"plain worker exited:\n{worker.tail()}")
        return bool(fleet.app.control.ping(destination=[worker.nodename], timeout=0.5))

    wait_for(answers, timeout=60, interval=0.2, what="plain worker answering")
    return worker


def publish_ungated(fleet: Fleet, queue: str, labels: list[str]) -> int:
    """Publish ``images.optimize_image`` from a process without the gate; its pid."""
    env = {k: v for k, v in fleet.env.items() if k != "TEST_CELERY_WORKER"}
    out = subprocess.run(
        [sys.executable, "-m", "tests.celery.plain", queue, "images.optimize_image", *labels],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def send_blocked_requests(web: WebProcess, n: int) -> None:
    """``n`` caption-generation requests by a regular (anonymous) user: let through in TEST."""
    for _ in range(n):
        response = requests.post(f"{web.url}/captions/generate", timeout=10)
        assert response.status_code == 200, response.text


def end_rehearsal(fleet: Fleet) -> tuple[dict[str, Any], str]:
    """Disable; the stored report's body and its Markdown (as the CLI and panel show it)."""
    result = fleet.service.disable_maintenance("pytest", requeue=False)
    stored = load_report(fleet.service, result.details["report_id"])
    return stored["body"], render(stored, "md")


def wait_for_counts(fleet: Fleet, expected: dict[str, int]) -> dict[str, Any]:
    """The current rehearsal's report once the nodes' counts (and the SQL log) reached
    ``expected`` and every hooked gate that decided wrote its timings."""
    assert fleet.service.attempts.flush()

    def ready() -> dict[str, Any] | None:
        body = build_test_report(fleet.service, probe=False)
        counted = body["would_block"]["counted_by_operation"]
        logged = sum(body["would_block"]["logged_by_channel"].values())
        if counted != expected or logged != sum(expected.values()):
            return None
        return body

    return wait_for(ready, timeout=30, interval=0.2, what=f"would-block counts {expected}")


def rows_by_kind(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [row for row in body["fleet"]["nodes"] if row["kind"] == kind and row["live"]]


def test_with_every_hook_installed_the_rehearsal_passes_and_counts_what_was_sent(
    rehearsal_fleet: tuple[Fleet, WebProcess],
) -> None:
    fleet, web = rehearsal_fleet
    fleet.reset()
    fleet.service.enable_maintenance("rehearse the upgrade", "10m", mode="test", enabled_by="qa")
    send_blocked_requests(web, HTTP_REQUESTS)
    labels = [f"gated-{uuid.uuid4().hex[:6]}" for _ in range(GATED_PUBLISHES)]
    for label in labels:
        fleet.tasks["optimize_image"].delay(label)  # to rh1: runs, nothing is refused in TEST
    wait_for(lambda: all(fleet.runs(label) == 1 for label in labels), timeout=30, what="jobs ran")
    wait_for_counts(
        fleet, {"caption_generation": HTTP_REQUESTS, "image_processing": GATED_PUBLISHES}
    )

    # Each gate times its own decisions; the node's heartbeat writes them out.
    def timed() -> bool:
        gates = build_test_report(fleet.service, probe=False)["performance"]["gates"]
        decisions = {g["gate"]: g["decisions"] for g in gates}
        return (
            decisions.get("http") == HTTP_REQUESTS
            and decisions.get("celery") == GATED_PUBLISHES
            and decisions.get("worker", 0) >= GATED_PUBLISHES
        )

    wait_for(timed, timeout=15, interval=0.2, what="every gate's timings written by its node")

    body, markdown = end_rehearsal(fleet)
    checks = {c["check"]: c for c in body["checks"]}
    assert body["fleet"]["cannot_refuse"] == [], markdown
    assert checks["every node could refuse"]["result"] == "pass", markdown
    assert body["verdict"] in ("pass", "pass with warnings"), markdown
    assert [c for c in body["checks"] if c["result"] == "fail"] == [], markdown
    # Exactly what the test sent, each counted by the node whose gate saw it.
    assert body["would_block"]["counted_by_operation"] == {
        "caption_generation": HTTP_REQUESTS,
        "image_processing": GATED_PUBLISHES,
    }
    assert body["would_block"]["logged_by_channel"] == {
        "http": HTTP_REQUESTS,
        "celery": GATED_PUBLISHES,
    }
    (web_row,) = rows_by_kind(body, "web")
    assert web_row["hooks"] == ["http"]
    assert web_row["would_block_seen"] == {"http": HTTP_REQUESTS}
    me = next(r for r in body["fleet"]["nodes"] if r["node"] == fleet.service.cache.node_id)
    assert me["would_block_seen"] == {"celery": GATED_PUBLISHES}
    (worker_row,) = rows_by_kind(body, "worker")
    assert worker_row["hostname"] == f"rh1@{HOST}" and "worker" in worker_row["hooks"]
    assert worker_row["would_block_seen"] == {}  # stamped by the gate: nothing unjudged
    gates = {(g["kind"], g["gate"]): g for g in body["performance"]["gates"]}
    assert gates[("web", "http")]["decisions"] == HTTP_REQUESTS
    assert gates[("app", "celery")]["decisions"] == GATED_PUBLISHES
    assert gates[("worker", "worker")]["decisions"] >= GATED_PUBLISHES
    assert "| rh1@" not in markdown and "## Nodes that could not refuse\n\nNone found." in markdown


def test_a_worker_and_a_publisher_without_hooks_fail_the_rehearsal_by_name(
    rehearsal_fleet: tuple[Fleet, WebProcess],
) -> None:
    fleet, web = rehearsal_fleet
    fleet.reset()
    plain_queue = f"{fleet.prefix}-plain"
    plain = start_plain_worker(fleet, plain_queue)
    try:
        started = fleet.service.enable_maintenance(
            "rehearse the upgrade", "10m", mode="test", enabled_by="qa"
        ).status.started_at
        assert started is not None
        send_blocked_requests(web, HTTP_REQUESTS)
        # Through the gate (counted here), to the worker without hooks (runs them).
        to_plain = [f"plain-{uuid.uuid4().hex[:6]}" for _ in range(GATED_PUBLISHES)]
        for label in to_plain:
            fleet.tasks["generate_caption"].apply_async((label,), queue=plain_queue)
        # Around the gate, to the hooked worker (it notices the missing stamp): from a
        # process without hooks, and from an app this process never installed the gate on
        # (it stamps nothing; the report knows this process by its registered node).
        ungated = [f"ungated-{uuid.uuid4().hex[:6]}" for _ in range(UNGATED_PUBLISHES)]
        publisher_pid = publish_ungated(fleet, fleet.default_queue, ungated)
        forgotten = make_app({**fleet.config, "task_default_queue": fleet.default_queue})
        # Publishes within the fenced wait may race the rehearsal's propagation: not judged.
        grace = fleet.settings.enable_wait
        wait_for(
            lambda: time.time() > started.timestamp() + grace,
            timeout=grace + 5,
            what="the fenced wait over",
        )
        unjudged = f"unjudged-{uuid.uuid4().hex[:6]}"
        forgotten.tasks["images.optimize_image"].delay(unjudged)
        wait_for(
            lambda: all(fleet.runs(label) == 1 for label in [*to_plain, *ungated, unjudged]),
            timeout=30,
            what="every job ran (nothing is refused in TEST)",
        )
        wait_for_counts(
            fleet,
            {
                "caption_generation": HTTP_REQUESTS + GATED_PUBLISHES,
                "image_processing": UNGATED_PUBLISHES + 1,
            },
        )
        # The CLI's report runs the broker census too (from the celeryconfig app).
        cli = fleet.cli("rehearsal", "report", "--format", "md")
        out, err = cli.communicate(timeout=120)
        assert cli.returncode == 0, err
        assert "**Verdict: fail**" in out and f"| plain@{HOST} | worker | missing hook |" in out
        stored = fleet.service.disable_maintenance("pytest", requeue=False).details
    finally:
        plain.stop()

    report = load_report(fleet.service, stored["report_id"])
    body, markdown, page = report["body"], render(report, "md"), render(report, "html")
    assert body["verdict"] == "fail", markdown
    checks = {c["check"]: c for c in body["checks"]}
    assert checks["every node could refuse"]["result"] == "fail"
    named = {c["node"]: c for c in body["fleet"]["cannot_refuse"]}
    worker = named[f"plain@{HOST}"]
    assert worker["problem"] == "missing hook" and worker["fails"]
    assert worker["blocked_traffic"] == GATED_PUBLISHES
    assert "captions.generate_caption 2" in worker["detail"]
    origin = f"gen{publisher_pid}@{HOST}"
    publisher = named[origin]
    assert publisher["kind"] == "publisher" and publisher["problem"] == "missing hook"
    assert publisher["blocked_traffic"] == UNGATED_PUBLISHES
    assert f"reached rh1@{HOST}" in publisher["detail"]
    here = f"gen{os.getpid()}@{HOST} ({fleet.service.cache.node_id})"
    assert named[here]["problem"] == "unjudged publishes"
    assert named[here]["blocked_traffic"] == 1
    assert set(named) == {f"plain@{HOST}", origin, here}, markdown
    # The hooked nodes still counted what they saw, each under its own name.
    assert body["would_block"]["logged_by_channel"] == {
        "http": HTTP_REQUESTS,
        "celery": GATED_PUBLISHES,
        "worker": UNGATED_PUBLISHES + 1,
    }
    (worker_row,) = rows_by_kind(body, "worker")
    assert worker_row["would_block_seen"] == {"worker": UNGATED_PUBLISHES + 1}
    for name in (f"plain@{HOST}", origin, here):
        assert name in markdown and name in page
    # `maintenance report <id>` shows the stored report as the panel does.
    cli = fleet.cli("report", stored["report_id"])
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    assert "**Verdict: fail**" in out and origin in out and f"plain@{HOST}" in out
