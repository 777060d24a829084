"""The emergency console in a real headless Chromium, through an emergency declared from
another process: the countdowns move, the outcome counts and a worker's ladder change as
the fleet board changes, a lift is refused (and why) while a job is still marked running,
then allowed.

The running job and the worker's ladder are written to the real Redis structures the
workers write (``JobRegistry``, ``FleetBoard``), which makes each step exact;
``tests/emergency/test_console.py`` follows the console through an emergency on real
prefork workers (and writes the docs screenshot)."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

from maintenance import EnhancedMaintenanceModeService
from maintenance.emergency import controller_for
from maintenance.emergency.fleet import FleetBoard, WorkerProgress
from maintenance.job_registry import ActiveJob, JobRegistry


def test_the_emergency_console_follows_a_real_emergency_and_its_lift(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    registry = JobRegistry(operator.redis, operator.keys)
    job = ActiveJob(
        "job-1", "captioner.generate", "caption_generation", "w1@host", None, 4242, time.time()
    )
    registry.add(job)
    expect(panel.locator("#emergency-open")).to_be_visible()
    declared = controller_for(operator).activate_emergency_mode(
        "Leaked platform token", "alice", 30, 20, "cli", watch=False
    )
    eid = declared.emergency_id
    console = panel.locator("#emergency-console")
    expect(console).to_be_visible()
    expect(panel.locator("#console-id")).to_have_text(eid)
    expect(panel.locator("#console-phase")).to_have_text("grace")
    expect(panel.locator("#emergency-open")).to_be_hidden()  # not offered while one is on
    # The countdowns move (the page ticks them between refreshes).
    grace = panel.locator("#console-grace")
    expect(grace).to_contain_text("in ")
    first = grace.inner_text()
    expect(grace).not_to_have_text(first, timeout=5_000)
    expect(panel.locator("#console-sigkill")).to_contain_text("UTC")
    expect(panel.locator("[data-count=running]")).to_have_text("1")

    # A worker reports its ladder and a job that stopped cooperatively.
    board = FleetBoard(operator.redis, operator.keys)
    board.write_progress(
        eid,
        WorkerProgress("node-w1", "w1@host", "prefork", plan_id=declared.plan.plan_id, running=1),
    )
    board.add_counts(eid, aborted=1)
    expect(panel.locator("[data-count=aborted]")).to_have_text("1")
    expect(panel.locator("#console-workers tbody tr")).to_contain_text("w1@host")
    expect(panel.locator("#console-report")).to_contain_text(eid)

    # Lift refused while the job is still marked running, and the panel says why.
    expect(panel.locator("#console-check")).to_contain_text("A lift is refused now")
    expect(panel.locator("#console-problems")).to_contain_text("job-1")
    panel.click("#console-lift")
    expect(panel.locator("#console-lift-result")).to_contain_text("Lift refused")
    expect(panel.locator("#console-lift-result")).to_contain_text("job-1")
    expect(panel.locator("#console-force")).to_be_visible()
    assert operator.state.load().is_active

    # The job ends and the worker finishes its ladder: the checks pass, the lift goes.
    registry.remove("job-1")
    board.write_progress(
        eid,
        WorkerProgress(
            "node-w1", "w1@host", "prefork", state="done", plan_id=declared.plan.plan_id
        ),
    )
    expect(panel.locator("#console-check")).to_contain_text("Checks pass")
    panel.click("#console-lift")
    expect(panel.locator("#console-lift-result")).to_contain_text("Lifted")
    expect(panel.locator("#console-lift-result")).to_contain_text(f"Report {eid}")
    expect(console).to_be_hidden()
    assert not operator.state.load().is_active
    assert panel.js_errors == []


def test_history_is_paginated_and_filtered_by_kind(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    for n in range(6):
        operator.enable_maintenance(f"Cycle {n}", "10m", enabled_by="cli")
        operator.disable_maintenance("cli", requeue=False)
    page_label = panel.locator("#history-page")
    expect(page_label).to_contain_text("1\u201310 of")
    rows = panel.locator("#history-table tbody tr")
    expect(rows).to_have_count(10)
    expect(panel.locator("#history-prev")).to_be_disabled()
    panel.click("#history-next")
    expect(page_label).to_contain_text("11\u2013")
    panel.select_option("#history-kind", "maintenance_enabled")
    expect(page_label).to_contain_text("1\u2013")
    # The filtered page replaces the unfiltered one: wait until no other kind is listed,
    # then until it shows all six cycles' enables (the panel follows the history live).
    others = panel.locator("#history-table tbody tr:not([data-kind=maintenance_enabled])")
    expect(others).to_have_count(0)
    expect(rows.nth(5)).to_be_attached()
    expect(others).to_have_count(0)
    assert panel.js_errors == []


def test_the_critical_only_toggle_narrows_the_emergency(
    panel: Any, operator: EnhancedMaintenanceModeService
) -> None:
    controller_for(operator).activate_emergency_mode(
        "Leaked platform token", "alice", 30, 20, "cli", watch=False
    )
    expect(panel.locator("#console-access")).to_have_text("administrators")
    panel.once("dialog", lambda dialog: dialog.accept())  # the page confirms first
    panel.click("#console-critical")
    expect(panel.locator(".flash-success")).to_contain_text("Only critical administrators")
    assert operator.state.load().critical_admin_only
    # The lockdown ends this ordinary administrator's own session too: nothing more here.
