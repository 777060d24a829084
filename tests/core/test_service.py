"""EnhancedMaintenanceModeService against real Redis and SQLite."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from maintenance import (
    ConflictError,
    Decision,
    EnhancedMaintenanceModeService,
    MaintenanceMode,
    NotAuthorized,
    OperationBlocked,
    OperationType,
    ValidationError,
)
from maintenance.attempts import counts_by_operation, logged_attempts
from maintenance.domain.operations import SEED_REGISTRY
from tests.helpers import wait_for

Op = OperationType
ALL_OPS = tuple(SEED_REGISTRY)
ADMIN = {"username": "root", "role": "admin"}
USER = {"username": "bob", "role": "user"}


def test_enable_blocks_work_for_users_but_not_admins(
    service: EnhancedMaintenanceModeService,
) -> None:
    assert not service.is_operation_blocked(Op.CAPTION_GENERATION)
    result = service.enable_maintenance("DB upgrade", "30m", enabled_by="alice")
    assert result.fenced and result.status.version == 1
    assert service.is_operation_blocked(Op.CAPTION_GENERATION, USER)
    assert service.is_operation_blocked("image_processing")
    assert not service.is_operation_blocked(Op.CAPTION_GENERATION, ADMIN)
    assert not service.is_operation_blocked(Op.READ_OPERATIONS, USER)
    assert not service.is_operation_blocked(Op.STATUS_CHECK, USER)
    assert service.get_blocked_operations() == [
        Op.CAPTION_GENERATION,
        Op.JOB_CREATION,
        Op.PLATFORM_OPERATIONS,
        Op.BATCH_OPERATIONS,
        Op.USER_DATA_MODIFICATION,
        Op.IMAGE_PROCESSING,
        Op.UNKNOWN,
    ]
    service.disable_maintenance("alice")
    assert not service.is_operation_blocked(Op.CAPTION_GENERATION, USER)
    assert service.get_blocked_operations() == []


def test_status_carries_reason_times_and_who(service: EnhancedMaintenanceModeService) -> None:
    service.enable_maintenance("Queue migration", timedelta(minutes=45), enabled_by="alice")
    status = service.get_maintenance_status()
    assert status.is_active and status.mode is MaintenanceMode.NORMAL
    assert status.reason == "Queue migration" and status.enabled_by == "alice"
    assert status.estimated_duration == 2700
    assert status.started_at is not None and status.estimated_completion is not None
    assert status.estimated_completion - status.started_at == timedelta(minutes=45)
    assert 2690 <= (status.retry_after() or 0) <= 2700
    assert status.login_blocked and not status.degraded and status.activation_id


def test_messages_name_the_operation_reason_and_end(
    service: EnhancedMaintenanceModeService,
) -> None:
    assert service.get_maintenance_message() == "The service is operating normally."
    service.enable_maintenance("Storage upgrade", "20m", enabled_by="alice")
    text = service.get_maintenance_message(Op.PLATFORM_OPERATIONS)
    assert "scheduled maintenance" in text and "Platform switching" in text
    assert "Reason: Storage upgrade." in text and "in about 20 minutes" in text
    for op in ALL_OPS:
        assert "Storage upgrade" in service.get_maintenance_message(op)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reason": ""}, "reason is required"),
        ({"reason": "x" * 501}, "at most 500"),
        ({"duration": "0s"}, "greater than zero"),
        ({"duration": "8d"}, "at most 7 days"),
        ({"mode": "chaos"}, "unknown maintenance mode"),
        ({"blocked_operations": ["warp"]}, "unknown operation type"),
        ({"blocked_operations": ["status_check"]}, "can never be blocked"),
        ({"enabled_by": ""}, "who is doing this"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    service: EnhancedMaintenanceModeService, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"reason": "ok", "duration": "5m", "enabled_by": "alice", **kwargs}
    with pytest.raises(ValidationError, match=message):
        service.enable_maintenance(**args)  # type: ignore[arg-type]
    assert service.state.load().version == 0
    assert service.history() == []


def test_two_admins_enabling_at_once_one_wins_the_other_gets_a_conflict(
    make_service,  # type: ignore[no-untyped-def]
) -> None:
    a, b = make_service(kind="web"), make_service(kind="web")
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def run(name: str, svc: EnhancedMaintenanceModeService) -> None:
        barrier.wait()
        try:
            results[name] = svc.enable_maintenance(
                f"by {name}", "10m", enabled_by=name, expected_version=0, wait=0
            )
        except ConflictError as exc:
            results[name] = exc

    threads = [threading.Thread(target=run, args=p) for p in (("alice", a), ("bob", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conflicts = [n for n, r in results.items() if isinstance(r, ConflictError)]
    winners = [n for n in results if n not in conflicts]
    assert len(winners) == 1 and len(conflicts) == 1
    assert a.state.load().enabled_by == winners[0]
    assert [e.actor for e in a.history()] == winners


def test_changing_an_active_maintenance_keeps_its_activation(
    service: EnhancedMaintenanceModeService,
) -> None:
    first = service.enable_maintenance("upgrade", "10m", enabled_by="alice").status
    second = service.enable_maintenance(
        "upgrade, escalated", "5m", mode="emergency", enabled_by="bob"
    ).status
    assert second.activation_id == first.activation_id
    assert second.started_at == first.started_at and second.emergency_id
    assert [e.kind for e in service.history()] == ["maintenance_updated", "maintenance_enabled"]
    with pytest.raises(ConflictError):
        service.enable_maintenance("stale", enabled_by="carol", expected_version=first.version)


def test_disabling_when_off_is_a_conflict(service: EnhancedMaintenanceModeService) -> None:
    with pytest.raises(ConflictError, match="not active"):
        service.disable_maintenance("alice")


def test_override_blocks_only_the_chosen_operations(
    service: EnhancedMaintenanceModeService,
) -> None:
    service.enable_maintenance(
        "image store move", enabled_by="alice", blocked_operations=["image_processing"]
    )
    assert service.is_operation_blocked(Op.IMAGE_PROCESSING, USER)
    assert not service.is_operation_blocked(Op.CAPTION_GENERATION, USER)


def test_test_mode_blocks_nothing_and_counts_would_blocks(
    service: EnhancedMaintenanceModeService,
) -> None:
    status = service.enable_maintenance("rehearsal", "5m", mode="test", enabled_by="alice").status
    assert status.test_mode and not status.login_blocked
    assert service.decide(Op.CAPTION_GENERATION, USER) is Decision.WOULD_BLOCK
    assert not service.is_operation_blocked(Op.CAPTION_GENERATION, USER)
    assert service.get_blocked_operations() == []
    service.record_blocked_attempt(Op.CAPTION_GENERATION, USER, endpoint="x", would_block=True)
    assert service.get_maintenance_status().extra["would_block_attempts"] == {
        "caption_generation": 1
    }


def test_emergency_with_critical_admin_only(service: EnhancedMaintenanceModeService) -> None:
    service.enable_maintenance(
        "breach", mode="emergency", enabled_by="sec", critical_admin_only=True
    )
    assert service.is_operation_blocked(Op.ADMIN_OPERATIONS, ADMIN)
    assert not service.is_operation_blocked(
        Op.ADMIN_OPERATIONS, {"username": "cto", "roles": ["admin", "critical"]}
    )
    assert service.is_operation_blocked(Op.READ_OPERATIONS, USER)
    assert not service.is_operation_blocked(Op.AUTHENTICATION, USER)


def test_check_operation_raises_with_everything_a_caller_needs(
    service: EnhancedMaintenanceModeService,
) -> None:
    service.enable_maintenance("upgrade", "2m", enabled_by="alice")
    with pytest.raises(OperationBlocked) as info:
        service.check_operation("batch_operations", USER)
    exc = info.value
    assert exc.operation is Op.BATCH_OPERATIONS and exc.status.reason == "upgrade"
    assert 100 <= (exc.retry_after or 0) <= 120 and "Batch processing" in exc.message


def test_bypass_lets_an_admin_context_through_and_refuses_non_admins(
    service: EnhancedMaintenanceModeService,
) -> None:
    service.enable_maintenance("upgrade", enabled_by="alice")
    with service.bypass(ADMIN):
        assert not service.is_operation_blocked(Op.JOB_CREATION)
        assert not service.is_operation_blocked(Op.JOB_CREATION, USER)
    assert service.is_operation_blocked(Op.JOB_CREATION)
    with pytest.raises(NotAuthorized), service.bypass(USER):
        pass


def test_subscribers_hear_every_change_until_unsubscribed(
    make_service,  # type: ignore[no-untyped-def]
) -> None:
    writer, listener = make_service(kind="cli", register=False), make_service(kind="web")
    seen: list[int] = []
    sub = listener.subscribe_to_status_changes(lambda s: seen.append(s.version))
    writer.enable_maintenance("one", enabled_by="a", wait=0)
    wait_for(lambda: 1 in seen, 15, what="first change")
    writer.disable_maintenance("a", wait=0)
    wait_for(lambda: 2 in seen, 15, what="second change")
    assert listener.unsubscribe(sub) and not listener.unsubscribe(sub)
    writer.enable_maintenance("three", enabled_by="a", wait=0)
    wait_for(lambda: listener.status.version == 3, 15, what="third change applied")
    assert 3 not in seen
    with pytest.raises(ValidationError):
        listener.subscribe_to_status_changes("not callable")  # type: ignore[arg-type]


def test_blocked_attempts_are_counted_and_logged(service: EnhancedMaintenanceModeService) -> None:
    status = service.enable_maintenance("upgrade", enabled_by="alice").status
    for _ in range(3):
        service.record_blocked_attempt(Op.CAPTION_GENERATION, USER, endpoint="gen", method="POST")
    service.record_blocked_attempt(Op.PLATFORM_OPERATIONS, None, channel="celery")
    assert service.get_maintenance_status().extra["blocked_attempts"] == {
        "caption_generation": 3,
        "platform_operations": 1,
    }
    assert service.attempts.flush()
    assert counts_by_operation(service, status.activation_id or "") == {
        "caption_generation": 3,
        "platform_operations": 1,
    }
    latest = logged_attempts(service, status.activation_id)[0]
    assert latest["channel"] == "celery" and latest["operation"] == "platform_operations"


def test_allow_operation_completion_is_remembered(service: EnhancedMaintenanceModeService) -> None:
    assert not service.is_completion_allowed("job-1")
    service.allow_operation_completion("job-1")
    assert service.is_completion_allowed("job-1")
    with pytest.raises(ValidationError):
        service.allow_operation_completion("")


def test_history_records_who_why_and_when(service: EnhancedMaintenanceModeService) -> None:
    service.enable_maintenance("upgrade", "10m", enabled_by="alice")
    service.disable_maintenance("bob", reason="done early")
    disabled, enabled = service.history(kinds=("maintenance_enabled", "maintenance_disabled"))
    assert (enabled.kind, enabled.actor, enabled.reason) == (
        "maintenance_enabled",
        "alice",
        "upgrade",
    )
    assert enabled.details["duration_seconds"] == 600
    assert (disabled.kind, disabled.actor, disabled.reason) == (
        "maintenance_disabled",
        "bob",
        "done early",
    )
    assert disabled.at >= enabled.at and disabled.activation_id == enabled.activation_id


def test_followers_leave_sql_to_their_parent_while_redis_is_up(
    make_service,  # type: ignore[no-untyped-def]
) -> None:
    """Pool children (followers) must not hold SQL connections: hundreds per host would
    exhaust PostgreSQL. Registered nodes cross-check SQL; followers only read Redis."""
    import time

    from sqlalchemy import event

    follower = make_service(kind="worker-child", register=False)
    node = make_service(kind="web")
    checkouts = {"follower": 0, "node": 0}
    for name, svc in (("follower", follower), ("node", node)):
        event.listen(
            svc.db.engine,
            "checkout",
            lambda *_a, n=name: checkouts.__setitem__(n, checkouts[n] + 1),
        )
    node.start()  # loads the status into Redis
    follower.start()
    started = time.time()
    # sql_check_interval is 0.5 s in the test settings: wait for several of them.
    wait_for(lambda: follower.cache.health.last_sync > started + 1.6, 10, what="ticks")
    wait_for(lambda: node.cache.health.last_sync > started + 1.6, 10, what="ticks")
    assert checkouts["follower"] == 0
    assert checkouts["node"] >= 2
