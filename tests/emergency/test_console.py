"""The emergency console in a real headless Chromium through a real emergency: two prefork
``celery worker`` processes run a job that stops when asked, one that ignores the request
and one that ignores SIGTERM. The console's grace countdown moves, its outcome counts
change as the ladder stops, terminates and kills the jobs, a lift is refused (and the
console says which job stands in the way) while a job still runs, then goes through.

The screenshot ``docs/img/admin-emergency-console.png`` is written here, mid-emergency.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.admin_ui.app import PANEL, LiveServer, build_app
from tests.admin_ui.conftest import app_config, open_context
from tests.browser import chromium
from tests.helpers import wait_for
from workers import EmergencyMaintenanceHandler

from .conftest import EmergencyFleet, hold_id, labels

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
#: Long enough to watch the countdown and try a lift inside the grace; SIGKILL follows.
GRACE, KILL_AFTER = 8.0, 3.0
#: The ladder's end, plus time for the workers to report and the panel to refresh.
LADDER_MS = round((GRACE + KILL_AFTER + 20) * 1000)
#: label -> (task, worker)
JOBS = {
    "coop": ("cooperative", "e1"),
    "stubborn": ("stubborn", "e1"),
    "unkillable": ("unkillable", "e2"),
}


@pytest.fixture(scope="module")
def panel_server(emergency_fleet: EmergencyFleet) -> Iterator[LiveServer]:
    """The admin panel on the fleet's own (registered, web) service."""
    live = LiveServer(build_app(emergency_fleet.fleet.service, **app_config())).start()
    yield live
    live.stop()


@pytest.fixture
def panel(panel_server: LiveServer) -> Iterator[Any]:
    """The panel page in a fresh Chromium, logged in as an administrator."""
    with chromium(expect_timeout_ms=10_000) as browser:
        context = open_context(browser, panel_server, "root", "admin")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(PANEL)
        page.wait_for_selector("body[data-ready=yes]")
        page.js_errors = errors  # type: ignore[attr-defined]
        yield page
        context.close()


def test_the_console_follows_a_real_emergency_on_real_workers(
    emergency_fleet: EmergencyFleet, panel: Any
) -> None:
    ef = emergency_fleet
    ef.reset()
    fleet = ef.fleet
    label = labels(*JOBS)
    hold = hold_id()
    ids = {job: ef.start(task, label[job], hold, worker) for job, (task, worker) in JOBS.items()}
    count = {name: panel.locator(f"[data-count={name}]") for name in ("running", "aborted")}
    count |= {name: panel.locator(f"[data-count={name}]") for name in ("terminated", "killed")}
    console = panel.locator("#emergency-console")
    expect(console).to_be_hidden()
    expect(panel.locator("#emergency-open")).to_be_visible()

    handler = EmergencyMaintenanceHandler(fleet.service, fleet.app)
    try:
        declared = handler.activate_emergency_mode(
            "Leaked platform token", "alice", GRACE, KILL_AFTER, "person"
        )
        eid = declared.emergency_id
        expect(console).to_be_visible()
        expect(panel.locator("#console-id")).to_have_text(eid)
        expect(panel.locator("#console-report")).to_contain_text(eid)
        expect(panel.locator("#emergency-open")).to_be_hidden()

        # In the grace: the cooperative job stops, the other two run on; the countdown moves.
        expect(panel.locator("#console-phase")).to_have_text("grace")
        expect(count["aborted"]).to_have_text("1")
        expect(count["running"]).to_have_text("2")
        expect(count["terminated"]).to_have_text("0")
        expect(count["killed"]).to_have_text("0")
        grace = panel.locator("#console-grace")
        expect(grace).to_contain_text("in ")
        first = grace.inner_text()
        expect(grace).not_to_have_text(first, timeout=5_000)
        assert ef.count("aborted", label["coop"]) == 1

        # A lift is refused while the jobs run, and the console names them.
        expect(panel.locator("#console-check")).to_contain_text("A lift is refused now")
        problems = panel.locator("#console-problems")
        expect(problems).to_contain_text(ids["unkillable"])
        expect(problems).to_contain_text("is still marked running")
        expect(panel.locator("#console-workers tbody tr")).to_have_count(2)
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        console.screenshot(path=str(DOCS_IMG / "admin-emergency-console.png"))
        panel.click("#console-lift")
        result = panel.locator("#console-lift-result")
        expect(result).to_contain_text("Lift refused")
        expect(result).to_contain_text(ids["unkillable"])  # it ignores SIGTERM: runs longest
        expect(panel.locator("#console-force")).to_be_visible()
        assert fleet.service.state.load().is_active

        # SIGTERM stops the stubborn job, SIGKILL the one ignoring SIGTERM: counts follow.
        expect(count["terminated"]).to_have_text("1", timeout=LADDER_MS)
        expect(count["killed"]).to_have_text("1", timeout=LADDER_MS)
        expect(count["running"]).to_have_text("0", timeout=LADDER_MS)
        expect(panel.locator("#console-phase")).to_have_text("terminated", timeout=LADDER_MS)
        expect(panel.locator("#console-check")).to_contain_text("Checks pass", timeout=LADDER_MS)
        assert handler.termination is not None
        handler.termination.result(timeout=LADDER_MS / 1000)
        for job in ("stubborn", "unkillable"):
            assert ef.count("runs", label[job]) == 0  # stopped, not finished

        # Nothing runs now: the lift goes through and requeues the three stopped jobs.
        fleet.release(hold)
        panel.click("#console-lift")
        expect(result).to_contain_text("Lifted")
        expect(result).to_contain_text("Requeued 3 job(s)")
        expect(result).to_contain_text(f"Report {eid}")
        expect(console).to_be_hidden()
        assert not fleet.service.state.load().is_active
        wait_for(
            lambda: all(ef.count("runs", label[j]) == 1 for j in JOBS),
            timeout=30,
            what="the requeued copies ran",
        )
        assert panel.js_errors == []
    finally:
        fleet.release(hold)
        ef.reset()
