"""TEST-mode rehearsals: per-node would-block tracking through a real request gate, nodes that
could not refuse, stored reports, reset. The fleet of real processes (web server, workers
with and without hooks, a publisher without the gate) is in
``tests/celery/test_rehearsal_fleet.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from maintenance import ConflictError, EnhancedMaintenanceModeService, Settings, ValidationError
from maintenance.nodes import NodeRegistry
from maintenance.rehearsal import build_test_report, reset_rehearsal
from maintenance.rehearsal_log import GateTimings
from maintenance.reports import list_reports, load_report, render
from tests.helpers import wait_for
from tests.web.conftest import build_app

from .test_propagation import NODE, settings_env

REQUESTS = 3
MakeService = Callable[..., EnhancedMaintenanceModeService]


@pytest.fixture
def web(service: EnhancedMaintenanceModeService) -> FlaskClient:
    """A Flask app with the middleware on ``service`` (a registered web node)."""
    return build_app(service).test_client()


@pytest.fixture
def operator(make_service: MakeService) -> EnhancedMaintenanceModeService:
    """The operator's process (like the CLI): not a node of the fleet."""
    return make_service(kind="cli", register=False)


def rehearse(operator: EnhancedMaintenanceModeService, web: FlaskClient) -> str:
    """Start a rehearsal and send REQUESTS caption requests through the real request gate."""
    # ``wait``: the web node has applied the rehearsal before the first request (as
    # ``--wait`` does for an operator); without it a loaded machine lets a request in
    # through the status before.
    status = operator.enable_maintenance(
        "rehearse Sunday upgrade", "20m", mode="test", enabled_by="alice", wait=30
    ).status
    for _ in range(REQUESTS):
        assert web.post("/captions/generate").status_code == 200  # nothing is refused in TEST
    return status.activation_id or ""


def settle(web_service: EnhancedMaintenanceModeService, operator: Any) -> dict[str, Any]:
    """The report once the web node's SQL samples and gate timings are written."""
    assert web_service.attempts.flush()
    return wait_for(
        lambda: (
            (body := build_test_report(operator))["performance"]["gates"]
            and body["performance"]["gates"][0]["decisions"] == REQUESTS
            and body
        ),
        timeout=30,
        what="the web node's gate timings",
    )


def test_the_web_gate_counts_under_its_node_and_times_its_own_decisions(
    service: EnhancedMaintenanceModeService,
    operator: EnhancedMaintenanceModeService,
    web: FlaskClient,
) -> None:
    activation = rehearse(operator, web)
    body = settle(service, operator)
    assert body["activation"]["activation_id"] == activation
    assert body["activation"]["started_by"] == "alice"
    assert body["would_block"]["counted_by_operation"] == {"caption_generation": REQUESTS}
    assert body["would_block"]["logged_by_channel"] == {"http": REQUESTS}
    assert body["would_block"]["top_endpoints"][0] == {
        "endpoint": "start_caption_generation",
        "operation": "caption_generation",
        "attempts": REQUESTS,
    }
    (row,) = body["fleet"]["nodes"]
    assert row["node"] == service.cache.node_id and row["kind"] == "web"
    assert row["hooks"] == ["http"] and row["would_block_seen"] == {"http": REQUESTS}
    (gate,) = body["performance"]["gates"]
    assert gate["node"] == service.cache.node_id and gate["gate"] == "http"
    assert 0 < gate["p50_us"] <= gate["max_us"]
    checks = {c["check"]: c["result"] for c in body["checks"]}
    assert checks["every live node applied the rehearsal"] == "pass"
    assert checks["every node could refuse"] == "pass"
    assert checks["web gates recorded would-be-blocked requests"] == "pass"
    assert checks["workers follow the control plane"] == "warn"  # no worker in this test
    assert body["verdict"] == "pass with warnings"


def test_nodes_that_could_not_refuse_fail_the_verdict_by_name(
    make_service: MakeService, service: EnhancedMaintenanceModeService, web: FlaskClient
) -> None:
    """A worker still on an older status, a web process without the request gate, and a
    shortfall against the declared inventory: each named, the verdict fails."""
    operator = make_service(kind="cli", register=False, expected_nodes=(("worker", 2),))
    rehearse(operator, web)
    version = operator.status.version
    registry = NodeRegistry(operator.redis, operator.keys)
    stale = "worker@old-host:7:abcdef"
    bare = "web@bare-host:8:abcdef"
    registry.heartbeat(stale, version - 1, {"kind": "worker", "hostname": "w9@old-host"})
    registry.report_applied(stale, version - 1)
    registry.heartbeat(bare, version, {"kind": "web", "hooks": []})
    try:
        body = build_test_report(operator)
    finally:
        registry.deregister(stale)
        registry.deregister(bare)
    named = {(c["node"], c["problem"]) for c in body["fleet"]["cannot_refuse"]}
    assert ("w9@old-host", "stale version") in named
    assert ("w9@old-host", "missing hook") in named  # registered without the worker gate
    assert (bare, "missing hook") in named
    assert ("2 worker node(s) of the inventory", "not registered") in named
    assert body["verdict"] == "fail"
    markdown = render({"kind": "test", "body": body}, "md")
    assert f"acked status v{version - 1}, the rehearsal is v{version}" in markdown
    assert "expected 2 worker node(s) with their hooks, 0 registered" in markdown


def test_a_frozen_node_is_named_stale_then_unreachable(
    settings: Settings, operator: EnhancedMaintenanceModeService
) -> None:
    """A real node process, stopped (SIGSTOP) before the rehearsal: while its last heartbeat
    is recent it is live on an older version; once silent past the node TTL, unreachable."""
    proc = subprocess.Popen(
        [sys.executable, str(NODE), "app"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=settings_env(settings),
    )
    try:
        node_id = (proc.stdout.readline() if proc.stdout else "").strip()
        wait_for(lambda: node_id in operator.nodes(), 10, what="node registered")
        os.kill(proc.pid, signal.SIGSTOP)
        result = operator.enable_maintenance(
            "rehearse", "20m", mode="test", enabled_by="alice", wait=0.3
        )
        assert [n["node_id"] for n in result.lagging_nodes] == [node_id]
        version = result.status.version

        def problems() -> set[tuple[str, str]]:
            body = build_test_report(operator, probe=False)
            assert body["verdict"] == "fail"
            return {(c["node"], c["problem"]) for c in body["fleet"]["cannot_refuse"]}

        if node_id in operator.nodes():  # still within the TTL of its last heartbeat
            named = problems()
            assert (node_id, "stale version") in named or node_id not in operator.nodes()
        wait_for(lambda: node_id not in operator.nodes(), 3 * settings.node_ttl, what="silent")
        assert problems() == {(node_id, "unreachable")}
        assert operator.status.version == version
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_ending_a_rehearsal_stores_its_report(
    service: EnhancedMaintenanceModeService,
    operator: EnhancedMaintenanceModeService,
    web: FlaskClient,
) -> None:
    activation = rehearse(operator, web)
    settle(service, operator)
    result = operator.disable_maintenance("alice")
    report_id = result.details["report_id"]
    assert result.details["verdict"] == "pass with warnings"
    stored = load_report(operator, report_id)
    assert stored["kind"] == "test" and stored["activation_id"] == activation
    assert [r["id"] for r in list_reports(operator, kind="test")] == [report_id]
    markdown = render(stored, "md")
    assert "# Maintenance rehearsal report" in markdown
    assert f"caption_generation | {REQUESTS}" in markdown
    assert f"| {service.cache.node_id} | web | http |" in markdown
    page = render(stored, "html")
    assert "<table>" in page and "<td>caption_generation</td>" in page
    assert any(e.kind == "test_report_created" for e in operator.history())


def test_reset_clears_the_counters_so_a_rehearsal_can_start_over(
    service: EnhancedMaintenanceModeService,
    operator: EnhancedMaintenanceModeService,
    web: FlaskClient,
) -> None:
    rehearse(operator, web)
    settle(service, operator)
    assert reset_rehearsal(operator, "alice") == REQUESTS
    body = build_test_report(operator)
    assert body["would_block"]["counted_by_operation"] == {}
    assert body["would_block"]["logged_by_channel"] == {}
    assert all(row["would_block_seen"] == {} for row in body["fleet"]["nodes"])


def test_reset_outside_a_rehearsal_is_refused(service: EnhancedMaintenanceModeService) -> None:
    with pytest.raises(ConflictError, match="no rehearsal"):
        reset_rehearsal(service, "alice")
    service.enable_maintenance("real one", enabled_by="alice")
    with pytest.raises(ConflictError):
        reset_rehearsal(service, "alice")


def test_the_expected_inventory_is_read_from_the_environment() -> None:
    env = {"MAINTENANCE_EXPECTED_NODES": "web=4, worker=2"}
    assert Settings.from_env(env).expected_nodes == (("web", 4), ("worker", 2))
    with pytest.raises(ValidationError, match="kind=count"):
        Settings.from_env({"MAINTENANCE_EXPECTED_NODES": "web"})


def test_gate_timings_sum_up_per_activation_and_gate() -> None:
    timings = GateTimings()
    for ns in (1_000, 2_000, 3_000, 400_000):
        timings.add("a1", "http", ns)
    timings.add("a1", "celery", 5_000)
    changed = timings.take_dirty()
    assert set(changed) == {"a1"} and timings.take_dirty() == {}
    http = changed["a1"]["http"]
    assert http["decisions"] == 4 and http["max_us"] == 400.0
    assert http["mean_us"] == 101.5
    assert 2.0 <= http["p50_us"] <= 4.096  # the upper bound of its power-of-two bucket
    assert http["p99_us"] == 400.0  # never above the maximum
    assert changed["a1"]["celery"]["decisions"] == 1
