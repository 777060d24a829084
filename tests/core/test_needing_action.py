"""Stopped jobs not safe to rerun are named wherever an operator looks: the status (its
live counter, the admin payload, the CLI text) and the admin panel's jobs section."""

from __future__ import annotations

from maintenance import EnhancedMaintenanceModeService
from maintenance.cli.render import render_status
from maintenance.store.jobs import KIND_TERMINATED, TERMINATED, JobRecord, JobStore
from maintenance.web.admin.jobs import jobs_view
from maintenance.web.payloads import admin_status


def test_a_stopped_job_not_safe_to_rerun_shows_in_status_and_panel(
    service: EnhancedMaintenanceModeService,
) -> None:
    JobStore(service.db).record(
        JobRecord(
            original_id="post-1",
            task_name="captioner.post_to_platform",
            kind=KIND_TERMINATED,
            state=TERMINATED,
            outcome="interrupted",
            reason="maintenance refused platform_operations: ...",
            rerun_safe=False,
        )
    )
    status = service.get_maintenance_status()
    assert status.jobs_needing_action_count == 1
    assert admin_status(service, status)["jobs_needing_action_count"] == 1
    assert "1 stopped and NOT safe to rerun (need action)" in render_status(status)
    [row] = jobs_view(service, status)["needing_action"]
    assert row["original_id"] == "post-1" and row["reason"].startswith("maintenance refused")
