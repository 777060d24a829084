"""Pure transitions: what an enable or a disable makes of the current status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maintenance import ConflictError, MaintenanceMode, MaintenanceStatus, OperationType
from maintenance.domain.enable_request import EnableRequest
from maintenance.domain.transitions import check_expected_version, disabled, enabled

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ids = iter(f"id{n}" for n in range(100))


def req(**kw: object) -> EnableRequest:
    args: dict[str, object] = {
        "reason": "upgrade",
        "duration": "30m",
        "mode": "normal",
        "enabled_by": "alice",
        "blocked_operations": None,
        **kw,
    }
    return EnableRequest.validate(**args)  # type: ignore[arg-type]


def test_switching_on_starts_an_activation_with_an_expected_end() -> None:
    status, event = enabled(MaintenanceStatus(version=4), req(), NOW, lambda: next(ids))
    assert status.is_active and status.started_at == NOW
    assert status.estimated_completion == NOW + timedelta(minutes=30)
    assert status.activation_id and status.emergency_id is None and status.login_blocked
    assert event.kind == "maintenance_enabled" and event.details["previous_version"] == 4


def test_changing_keeps_activation_start_and_emergency_id() -> None:
    first, _ = enabled(MaintenanceStatus(), req(mode="emergency"), NOW, lambda: next(ids))
    later = NOW + timedelta(minutes=5)
    second, event = enabled(first, req(mode="emergency", reason="worse"), later)
    assert second.activation_id == first.activation_id and second.started_at == NOW
    assert second.emergency_id == first.emergency_id and event.kind == "maintenance_updated"
    assert second.estimated_completion == later + timedelta(minutes=30)


def test_test_mode_never_blocks_logins_and_records_its_would_block_set() -> None:
    status, _ = enabled(MaintenanceStatus(), req(mode="test"), NOW)
    assert status.test_mode and not status.login_blocked
    assert OperationType.CAPTION_GENERATION in status.blocked_operations


def test_disable_keeps_the_session_epoch_and_asks_for_recovery() -> None:
    on = MaintenanceStatus(
        is_active=True,
        mode=MaintenanceMode.NORMAL,
        activation_id="a",
        extra={"session_epoch": 3, "emergency": {"x": 1}},
    )
    off, event = disabled(on, "bob", requeue=True, reason="done")
    assert not off.is_active and off.recovery_pending and off.activation_id == "a"
    assert off.extra == {"session_epoch": 3}
    assert event.kind == "maintenance_disabled" and event.reason == "done"
    with pytest.raises(ConflictError, match="not active"):
        disabled(off, "bob", requeue=False)


def test_acting_on_an_old_version_is_a_conflict() -> None:
    check_expected_version(MaintenanceStatus(version=2), None)
    check_expected_version(MaintenanceStatus(version=2), 2)
    with pytest.raises(ConflictError) as info:
        check_expected_version(MaintenanceStatus(version=3, enabled_by="carol"), 2)
    assert info.value.current_version == 3 and "carol" in str(info.value)
