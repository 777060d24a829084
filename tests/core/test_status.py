"""MaintenanceStatus: exact JSON round trips and derived values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from maintenance import MaintenanceMode, MaintenanceStatus
from maintenance.domain.operations import SEED_REGISTRY

aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
statuses = st.builds(
    MaintenanceStatus,
    is_active=st.booleans(),
    mode=st.sampled_from(MaintenanceMode),
    reason=st.none() | st.text(max_size=500),
    estimated_duration=st.none() | st.integers(1, 7 * 86400),
    started_at=st.none() | aware,
    estimated_completion=st.none() | aware,
    enabled_by=st.none() | st.text(max_size=50),
    blocked_operations=st.lists(st.sampled_from(tuple(SEED_REGISTRY)), unique=True).map(tuple),
    active_jobs_count=st.integers(0, 10**6),
    invalidated_sessions=st.integers(0, 10**6),
    test_mode=st.booleans(),
    version=st.integers(0, 2**40),
    activation_id=st.none() | st.text(max_size=12),
    critical_admin_only=st.booleans(),
    login_blocked=st.booleans(),
    emergency_phase=st.none() | st.sampled_from(["grace", "terminating", "terminated"]),
    degraded=st.booleans(),
    extra=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3),
)


@given(statuses)
def test_every_status_round_trips_through_json_exactly(status: MaintenanceStatus) -> None:
    assert MaintenanceStatus.from_json(status.to_json()) == status
    assert MaintenanceStatus.from_dict(status.to_dict()) == status


def test_unknown_keys_from_newer_writers_are_ignored() -> None:
    data = MaintenanceStatus(is_active=True, reason="x").to_dict()
    data["field_from_the_future"] = 1
    assert MaintenanceStatus.from_dict(data).reason == "x"


def test_retry_after_counts_whole_seconds_to_the_estimated_end() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    status = MaintenanceStatus(
        is_active=True, estimated_completion=now + timedelta(seconds=90, milliseconds=1)
    )
    assert status.retry_after(now) == 91
    assert status.is_overdue(now) is False


def test_retry_after_is_unknown_without_an_end_or_after_it() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert MaintenanceStatus(is_active=True).retry_after(now) is None
    late = MaintenanceStatus(is_active=True, estimated_completion=now - timedelta(seconds=1))
    assert late.retry_after(now) is None
    assert late.is_overdue(now) is True
    assert MaintenanceStatus(is_active=False).retry_after(now) is None
