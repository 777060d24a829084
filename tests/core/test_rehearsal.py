"""TEST-mode rehearsals: would-block tracking, validation report, reset, stored reports."""

from __future__ import annotations

import pytest

from maintenance import ConflictError, EnhancedMaintenanceModeService, OperationType
from maintenance.rehearsal import build_test_report, reset_rehearsal
from maintenance.reports import list_reports, load_report, render

Op = OperationType
USER = {"username": "bob", "role": "user"}


def rehearse(service: EnhancedMaintenanceModeService) -> str:
    status = service.enable_maintenance(
        "rehearse Sunday upgrade", "20m", mode="test", enabled_by="alice"
    ).status
    for _ in range(3):
        service.record_blocked_attempt(
            Op.CAPTION_GENERATION,
            USER,
            endpoint="caption.generate",
            method="POST",
            would_block=True,
        )
    service.record_blocked_attempt(
        Op.IMAGE_PROCESSING, None, endpoint="images.optimize", channel="celery", would_block=True
    )
    assert service.attempts.flush()
    return status.activation_id or ""


def test_report_shows_what_would_have_been_blocked_and_a_verdict(
    service: EnhancedMaintenanceModeService,
) -> None:
    activation = rehearse(service)
    body = build_test_report(service)
    assert body["activation"]["activation_id"] == activation
    assert body["activation"]["started_by"] == "alice"
    assert body["would_block"]["counted_by_operation"] == {
        "caption_generation": 3,
        "image_processing": 1,
    }
    assert body["would_block"]["logged_by_channel"] == {"http": 3, "celery": 1}
    assert body["would_block"]["top_endpoints"][0] == {
        "endpoint": "caption.generate",
        "operation": "caption_generation",
        "attempts": 3,
    }
    checks = {c["check"]: c["result"] for c in body["checks"]}
    assert checks["every live node applied the rehearsal"] == "pass"
    assert checks["web hook recorded would-be-blocked requests"] == "pass"
    assert checks["publish gate recorded would-be-blocked jobs"] == "pass"
    assert checks["workers follow the control plane"] == "warn"  # no worker in this test
    assert body["verdict"] == "pass with warnings"
    assert body["performance"]["hot_path_check_us"] > 0


def test_ending_a_rehearsal_stores_its_report(service: EnhancedMaintenanceModeService) -> None:
    activation = rehearse(service)
    result = service.disable_maintenance("alice")
    report_id = result.details["report_id"]
    assert result.details["verdict"] == "pass with warnings"
    stored = load_report(service, report_id)
    assert stored["kind"] == "test" and stored["activation_id"] == activation
    assert [r["id"] for r in list_reports(service, kind="test")] == [report_id]
    markdown = render(stored, "md")
    assert "# Maintenance rehearsal report" in markdown and "caption_generation | 3" in markdown
    page = render(stored, "html")
    assert "<table>" in page and "<td>caption_generation</td>" in page
    assert any(e.kind == "test_report_created" for e in service.history())


def test_reset_clears_the_counters_so_a_rehearsal_can_start_over(
    service: EnhancedMaintenanceModeService,
) -> None:
    rehearse(service)
    assert reset_rehearsal(service, "alice") == 4
    body = build_test_report(service)
    assert body["would_block"]["counted_by_operation"] == {}
    assert body["would_block"]["logged_by_channel"] == {}


def test_reset_outside_a_rehearsal_is_refused(service: EnhancedMaintenanceModeService) -> None:
    with pytest.raises(ConflictError, match="no rehearsal"):
        reset_rehearsal(service, "alice")
    service.enable_maintenance("real one", enabled_by="alice")
    with pytest.raises(ConflictError):
        reset_rehearsal(service, "alice")
