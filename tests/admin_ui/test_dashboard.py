"""In a real headless Chromium against a real server: the dashboard follows the status live
(SSE, resumed with Last-Event-ID), counts blocked attempts and charts them, shows the drain,
sessions, nodes, history and stored reports."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from maintenance import EnhancedMaintenanceModeService
from maintenance.nodes import NodeRegistry
from tests.admin_ui.app import PANEL, LiveServer
from tests.admin_ui.conftest import open_context

pytestmark = pytest.mark.browser


def post_anonymously(server: LiveServer, path: str) -> int:
    """POST from outside the browser; the HTTP status."""
    request = urllib.request.Request(f"{server.url}{path}", data=b"{}", method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_status_follows_outside_changes_live_without_reload(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """Changes made elsewhere (CLI, another node) appear in the open page through the stream."""
    expect(panel.locator("#live-indicator")).to_have_text("live")
    panel.evaluate("() => { window.__sameDocument = true; }")
    operator.enable_maintenance("Disk swap", "20m", enabled_by="cli-admin")
    expect(panel.locator("#status-state")).to_have_text("Maintenance on: normal")
    expect(panel.locator("#status-reason")).to_have_text("Disk swap")
    expect(panel.locator("#status-by")).to_have_text("cli-admin")
    expect(panel.locator("#status-left")).to_contain_text("19m")
    expect(panel.locator("#disable-submit")).to_be_enabled()
    operator.disable_maintenance("cli-admin", requeue=False)
    expect(panel.locator("#status-state")).to_have_text("Maintenance off")
    assert panel.evaluate("() => window.__sameDocument") is True


def test_time_left_counts_down_to_overdue(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """The expected end is shown, and passing it turns the time left into "overdue"."""
    operator.enable_maintenance("Quick fix", 2, enabled_by="cli")
    expect(panel.locator("#status-end")).not_to_have_text("-")
    left = panel.locator("#status-left")
    expect(left).to_contain_text("overdue by")
    expect(left).to_have_class("overdue")


def test_stream_resumes_with_the_last_event_id(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """When the server closes the stream, the page reconnects saying which version it saw."""
    version = operator.enable_maintenance("Resume check", "5m", enabled_by="cli").status.version
    expect(panel.locator("#status-version")).to_have_text(str(version))
    # The server ends each stream after MAINTENANCE_SSE_MAX_SECONDS; the next one resumes.
    reconnect = panel.wait_for_event(
        "request", lambda r: "/api/maintenance/stream" in r.url, timeout=15_000
    )
    assert reconnect.all_headers().get("last-event-id") == str(version)
    operator.disable_maintenance("cli", requeue=False)
    expect(panel.locator("#status-state")).to_have_text("Maintenance off")


def test_blocked_attempts_are_counted_and_charted(
    panel: Any, server: LiveServer, operator: EnhancedMaintenanceModeService
) -> None:
    """Refused requests show up per operation and as bars of the current minute."""
    operator.enable_maintenance("Model upgrade", "30m", enabled_by="cli")
    expect(panel.locator("#status-state")).to_have_text("Maintenance on: normal")
    for _ in range(3):
        assert post_anonymously(server, "/captions/generate") == 503
    row = panel.locator("#attempts-table tr[data-op=caption_generation]")
    expect(row.locator("td").nth(1)).to_have_text("3")
    expect(row.locator("td").nth(3)).to_have_text("3")
    chart = panel.locator("#attempts-chart")
    expect(chart).to_have_attribute("data-total", "3")
    bars = chart.locator("rect.bar[data-op=caption_generation]")
    expect(bars.first).to_be_visible()
    # One bar, or two when the posts straddled a minute boundary.
    counts = [int(n) for n in bars.evaluate_all("bs => bs.map(b => b.dataset.count)")]
    assert sum(counts) == 3 and len(counts) <= 2
    expect(panel.locator("#chart-legend")).to_contain_text("Caption generation")
    expect(panel.locator("#recent-table")).to_contain_text("start_caption_generation")
    assert post_anonymously(server, "/captions/generate") == 503
    expect(row.locator("td").nth(1)).to_have_text("4")
    expect(chart).to_have_attribute("data-total", "4")


def test_drain_progress_goes_to_zero_as_blocked_jobs_end(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """Running jobs of a blocked type are listed and counted down to a drained state."""
    registry = operator.keys.active_jobs
    started = time.time() - 90
    for task_id, op in (("t-cap", "caption_generation"), ("t-img", "image_processing")):
        entry = {"name": f"tasks.{op}", "operation": op, "worker": "w1@host", "started": started}
        operator.redis.hset(registry, task_id, json.dumps(entry))
    operator.redis.hset(
        registry,
        "t-admin",
        json.dumps({"name": "tasks.cleanup", "operation": "admin_operations", "started": started}),
    )
    operator.enable_maintenance("Drain test", "1h", enabled_by="cli")
    summary = panel.locator("#drain-summary")
    expect(summary).to_have_attribute("data-left", "2")
    expect(summary).to_contain_text("2 running job(s) of a blocked type left")
    expect(panel.locator("#jobs-table tr.blocking")).to_have_count(2)
    expect(panel.locator("#jobs-table")).to_contain_text("tasks.cleanup")
    operator.redis.hdel(registry, "t-cap")  # what task_postrun does
    expect(summary).to_have_attribute("data-left", "1")
    expect(summary).to_contain_text("1 running job(s) of a blocked type left; 1 of 2 finished.")
    assert panel.locator("#drain-progress").evaluate("p => [p.value, p.max]") == [1, 2]
    operator.redis.hdel(registry, "t-img")
    expect(summary).to_contain_text("Drained")
    assert panel.locator("#drain-progress").evaluate("p => p.value === p.max")


@pytest.fixture
def user_context(browser: Any, server: LiveServer) -> Iterator[Any]:
    context = open_context(browser, server, "alice", "user")
    yield context
    context.close()


def test_active_sessions_are_listed_and_can_be_logged_out(
    panel: Any, user_context: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """A logged-in user shows up in the sample; the button logs every non-admin out."""
    assert user_context.request.get("/me").json()["username"] == "alice"
    expect(panel.locator("#sessions-table")).to_contain_text("alice")
    expect(panel.locator("#sessions-summary")).not_to_have_attribute("data-count", "0")
    panel.once("dialog", lambda dialog: dialog.accept())
    panel.click("#sessions-invalidate")
    expect(panel.locator(".flash-success")).to_contain_text("non-admin session(s) logged out")
    assert user_context.request.get("/me").json()["username"] is None
    assert panel.request.get(f"{PANEL}data").ok  # the admin stays logged in
    expect(panel.locator("#sessions-summary")).to_have_attribute("data-count", "0")


def test_nodes_show_applied_versions_and_lagging_ones_stand_out(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """A node that has not applied the current version is flagged as behind."""
    ghost = "worker@ghost-host:1:abcdef"
    nodes = NodeRegistry(operator.redis, operator.keys)
    nodes.heartbeat(ghost, 0, {"kind": "worker", "host": "ghost-host"})
    try:
        version = operator.enable_maintenance("Lag check", "5m", enabled_by="cli", wait=0)
        lagging = panel.locator("#nodes-table tr.lagging")
        expect(lagging).to_contain_text("ghost-host")
        expect(lagging).to_contain_text("(behind)")
        expect(panel.locator("#nodes-table tbody tr:not(.lagging)").first).to_contain_text(
            f"v{version.status.version}"
        )
        expect(panel.locator("#nodes-summary")).to_contain_text("1 behind")
    finally:
        nodes.deregister(ghost)


def test_history_and_a_rehearsal_report_are_listed_and_viewable(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    """A TEST-mode rehearsal run from the panel leaves events and a report one can open; a
    web process registered without the request gate fails it, by name."""
    panel.fill("#reason", "Rehearsal of the upgrade")
    panel.fill("#duration", "10m")
    panel.select_option("#mode", "test")
    panel.click("#enable-submit")
    expect(panel.locator("#status-state")).to_have_text("Maintenance on: test")
    # A web process whose app lacks the middleware's gate: it follows the status (acks
    # every version as it is published) but would not refuse a single request.
    bare = "web@bare-host:1:rehear"
    nodes = NodeRegistry(operator.redis, operator.keys)
    stop = threading.Event()

    def follow() -> None:
        applied = -1
        while not stop.wait(0.02):
            version = operator.status.version
            nodes.heartbeat(bare, version, {"kind": "web", "hooks": []})
            if version != applied:
                nodes.report_applied(bare, version)
                applied = version

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        panel.click("#disable-submit")
        expect(panel.locator(".flash-info")).to_contain_text("Rehearsal report")
    finally:
        stop.set()
        follower.join(5)
        nodes.deregister(bare)
    history = panel.locator("#history-table")
    expect(history.locator("tr[data-kind=maintenance_enabled]").first).to_contain_text(
        "Rehearsal of the upgrade"
    )
    expect(history.locator("tr[data-kind=maintenance_disabled]").first).to_contain_text("root")
    expect(history.locator("tr[data-kind=test_report_created]")).to_have_count(1)
    link = panel.locator("#reports-table a.report-link").first
    report_id = link.inner_text()
    assert report_id.startswith("tes-")
    link.click()
    expect(panel.locator("h1")).to_have_text("Maintenance rehearsal report")
    expect(panel.locator("body")).to_contain_text("Verdict: fail")
    check = panel.locator("table tr", has_text="every node could refuse")
    expect(check).to_contain_text("FAIL")
    expect(check).to_contain_text(f"{bare}: missing hook")
    named = panel.locator("table tr", has_text=bare).filter(has_text="without the http gate")
    expect(named).to_have_count(1)
    expect(named).to_contain_text("missing hook")
    expect(panel.locator("body")).to_contain_text("Rehearsal of the upgrade")
    raw = panel.request.get(f"{PANEL}reports/{report_id}?format=json").json()
    assert raw["id"] == report_id and raw["kind"] == "test"
    assert panel.request.get(f"{PANEL}reports/no-such-report").status == 404
