"""Delivery over real HTTP to a local receiver, on SQLite and PostgreSQL: retries until
every event arrived exactly once (by idempotency key), signed; nothing lost when the
delivering process is SIGKILLed; failures visible in status and on the CLI."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from maintenance import EnhancedMaintenanceModeService, Settings, build_service
from maintenance.domain.status import utcnow
from maintenance.emergency import controller_for
from maintenance.notify import outbox
from maintenance.notify.signing import SIGNATURE_HEADER, verify
from maintenance.store import schema
from tests.helpers import wait_for
from tests.support import MAINTENANCE_CLI
from workers.beat import status_check
from workers.requeue import requeue_jobs

from .conftest import SECRET, notify_settings
from .receiver import Receiver
from .test_units import receiver_verifies


@pytest.fixture
def services() -> Iterator[list[EnhancedMaintenanceModeService]]:
    made: list[EnhancedMaintenanceModeService] = []
    yield made
    for service in made:
        service.close()
        service.db.dispose()


def _service(made: list[EnhancedMaintenanceModeService], settings: Settings, **kw: Any):
    service = build_service(settings, **kw)
    made.append(service)
    return service


def _rows(service: EnhancedMaintenanceModeService) -> list[Any]:
    t = schema.notifications
    with service.db.connect() as conn:
        return list(conn.execute(select(t).order_by(t.c.id)).all())


def _no_sessions(*_args: Any, **_kw: Any) -> Any:
    class Nothing:
        def to_dict(self) -> dict[str, int]:
            return {"invalidated": 0}

    return Nothing()


def _every_kind_of_event(service: EnhancedMaintenanceModeService) -> None:
    """Every announced event, each decided by the code that decides it in production."""
    service.enable_maintenance("db upgrade", 60, enabled_by="alice")  # enabled
    service.enable_maintenance("db upgrade, longer", 120, enabled_by="alice")  # changed
    later = utcnow() + timedelta(seconds=600)
    status_check(service, None, now=later)  # overdue (beat) and drained (nothing running)
    service.disable_maintenance("bob")  # disabled, recovery pending
    requeue_jobs(None, service, actor="recovery")  # recovery finished (nothing to requeue)
    emergency = controller_for(service)
    emergency.activate_emergency_mode(
        "disk full", "carol", grace_period=1, kill_after=1, invalidate=_no_sessions
    )  # emergency declared
    emergency.deactivate_emergency_mode("carol", force=True, requeue=False)  # lifted


EXPECTED_TYPES = [
    "maintenance.enabled",
    "maintenance.changed",
    "maintenance.overdue",
    "maintenance.drained",
    "maintenance.disabled",
    "recovery.finished",
    "emergency.declared",
    "emergency.lifted",
]


def test_every_event_arrives_exactly_once_after_three_failed_deliveries_signed(
    make_receiver: Callable[..., Receiver],
    redis_url: str,
    prefix: str,
    database_url: str,
    services: list[EnhancedMaintenanceModeService],
) -> None:
    receiver = make_receiver(fail_first=3)
    urls = [f"{receiver.url}/hook", f"slack+{receiver.url}/slack"]
    settings = notify_settings(redis_url, database_url, prefix, urls)
    service = _service(services, settings, kind="web").start()
    _every_kind_of_event(service)
    rows = _rows(service)
    json_id, slack_id = (e.id for e in service.notifier.endpoints)
    assert [r.type for r in rows if r.endpoint == json_id] == EXPECTED_TYPES
    keys = {r.key: r for r in rows}

    assert service.notifier.start_delivery("test")
    wait_for(lambda: set(receiver.accepted()) == set(keys), timeout=30, what="every event")

    arrivals = receiver.all()
    assert [a.status for a in arrivals[:3]] == [500, 500, 500]
    assert len(arrivals) == len(keys) + 3  # the three failures, then each row once
    assert Counter(a.key for a in arrivals if a.status == 204) == Counter(set(keys))
    by_key: dict[str, list[Any]] = {}
    for arrival in arrivals:
        by_key.setdefault(arrival.key, []).append(arrival)
        assert verify(SECRET, arrival.headers[SIGNATURE_HEADER.lower()], arrival.body)
        assert receiver_verifies(SECRET, arrival.headers[SIGNATURE_HEADER.lower()], arrival.body)
    for failed in arrivals[:3]:
        tries = by_key[failed.key]  # retried under the same key, with the same body
        assert [int(a.headers["maintenance-delivery-attempt"]) for a in tries] == list(
            range(1, len(tries) + 1)
        )
        assert {a.body for a in tries} == {failed.body}
    hooks = [a for a in receiver.accepted("/hook").values()]
    assert sorted(a.json()["type"] for a in hooks) == sorted(EXPECTED_TYPES)
    assert all(a.json()["id"] == a.key and keys[a.key].endpoint == json_id for a in hooks)
    slack = list(receiver.accepted("/slack").values())
    assert len(slack) == len(EXPECTED_TYPES)
    assert all(
        set(a.json()) == {"text", "blocks"} and keys[a.key].endpoint == slack_id for a in slack
    )
    declared = next(a.json() for a in hooks if a.json()["type"] == "emergency.declared")
    assert declared["text"].startswith("carol declared an emergency: disk full")

    wait_for(lambda: all(r.state == outbox.DELIVERED for r in _rows(service)), what="marked")
    health = service.notifier.health()
    assert not health.degraded and health.pending == 0 and health.failed == 0


def _cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "REDIS_URL": str(settings.redis_url),
        "MAINTENANCE_DATABASE_URL": settings.database_url,
        "MAINTENANCE_REDIS_PREFIX": settings.redis_prefix,
        "MAINTENANCE_WEBHOOK_URLS": ",".join(settings.webhook_urls),
        "MAINTENANCE_WEBHOOK_SECRET": str(settings.webhook_secret),
        "MAINTENANCE_WEBHOOK_TIMEOUT": str(settings.webhook_timeout),
        "MAINTENANCE_WEBHOOK_BACKOFF": str(settings.webhook_backoff),
        "MAINTENANCE_WEBHOOK_BACKOFF_MAX": str(settings.webhook_backoff_max),
        "MAINTENANCE_WEBHOOK_LEASE": str(settings.webhook_lease),
        "MAINTENANCE_WEBHOOK_POLL_INTERVAL": str(settings.webhook_poll_interval),
        "MAINTENANCE_WEBHOOK_FAILING_AFTER": str(settings.webhook_failing_after),
        "MAINTENANCE_WEBHOOK_RETRY_FOR": str(settings.webhook_retry_for),
    }
    env.update(extra)
    return env


def _deliverer(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [MAINTENANCE_CLI, "notify", "deliver", "--follow"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_nothing_is_lost_when_the_delivering_process_is_killed_mid_way(
    make_receiver: Callable[..., Receiver],
    redis_url: str,
    prefix: str,
    database_url: str,
    services: list[EnhancedMaintenanceModeService],
) -> None:
    # Each answer takes 50 ms, so the first deliverer is killed with rows left to send.
    receiver = make_receiver(fail_first=3, delay=0.05)
    settings = notify_settings(
        redis_url,
        database_url,
        prefix,
        [f"{receiver.url}/hook"],
        webhook_timeout=0.5,
        webhook_lease=4.0,
    )
    service = _service(services, settings, kind="cli", register=False)
    for n in range(15):
        service.enable_maintenance(f"step {n}", enabled_by="alice")
        service.disable_maintenance("alice", requeue=False)
    keys = {r.key for r in _rows(service)}
    assert len(keys) == 30
    env = _cli_env(settings)

    first = _deliverer(env)
    try:
        wait_for(lambda: len(receiver.accepted()) >= 8, timeout=60, what="first deliveries")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    cut_at = set(receiver.accepted())
    assert 8 <= len(cut_at) < len(keys), "the kill must land mid-way"

    second = _deliverer(env)
    try:
        # Rows the killed process held come back when its lease (4 s) runs out; one it had
        # sent but not marked is sent again, and the receiver drops the copy by its key.
        timeout = settings.webhook_lease + 30
        wait_for(lambda: set(receiver.accepted()) == keys, timeout=timeout, what="all events")
        wait_for(
            lambda: all(r.state == outbox.DELIVERED for r in _rows(service)),
            timeout=timeout,
            what="every row marked delivered",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0, second.stderr.read() if second.stderr else ""
    arrivals = receiver.all()
    assert len(arrivals) >= len(keys) + 3
    for key in keys:  # a re-sent row is the same notification, byte for byte
        assert len({a.body for a in arrivals if a.key == key}) == 1


def test_failures_are_visible_in_status_and_on_the_cli_without_the_url_or_its_credentials(
    make_receiver: Callable[..., Receiver],
    redis_url: str,
    prefix: str,
    sqlite_url: str,
    services: list[EnhancedMaintenanceModeService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = make_receiver(fail_first=10**6)
    port = receiver.url.rsplit(":", 1)[1]
    url = f"http://ops:hunter2@127.0.0.1:{port}/T0K3N-path"
    settings = notify_settings(
        redis_url, sqlite_url, prefix, [url], webhook_failing_after=0.5, webhook_backoff=5.0
    )
    service = _service(services, settings, kind="cli", register=False)
    service.enable_maintenance("db upgrade", enabled_by="alice")
    env = _cli_env(settings)

    with caplog.at_level(logging.INFO):
        once = subprocess.run(
            [MAINTENANCE_CLI, "notify", "deliver"], env=env, capture_output=True, text=True
        )
        assert once.returncode == 1, once.stderr
        assert "HTTP 500" in once.stdout and f"http://127.0.0.1:{port}/…" in once.stdout
        first_failure = service.notifier.health().endpoints[0].counts.failing_since
        assert first_failure is not None
        health = wait_for(
            lambda: (h := service.notifier.health()).degraded and h,
            timeout=settings.webhook_failing_after + 10,
            what="degraded after the threshold",
        )
    assert (utcnow() - first_failure).total_seconds() >= settings.webhook_failing_after
    assert receiver.all()[0].headers["authorization"] == "Basic b3BzOmh1bnRlcjI="
    assert "failing for" in str(health.reason) and "HTTP 500" in str(health.reason)
    status = subprocess.run(
        [MAINTENANCE_CLI, "notify", "status", "--json"], env=env, capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["degraded"] and shown["pending"] == 1
    assert shown["endpoints"][0]["last_error"] == "HTTP 500"
    human = subprocess.run(
        [MAINTENANCE_CLI, "notify", "status"], env=env, capture_output=True, text=True
    ).stdout
    assert "Degraded: webhook" in human
    for text in (once.stdout, once.stderr, status.stdout, human, caplog.text, str(health)):
        assert "T0K3N" not in text and "hunter2" not in text


def test_a_notification_given_up_on_is_sent_again_on_request(
    make_receiver: Callable[..., Receiver],
    redis_url: str,
    prefix: str,
    sqlite_url: str,
    services: list[EnhancedMaintenanceModeService],
) -> None:
    receiver = make_receiver(fail_first=10**6)
    settings = notify_settings(
        redis_url, sqlite_url, prefix, [f"{receiver.url}/hook"], webhook_retry_for=0.2
    )
    service = _service(services, settings, kind="cli", register=False)
    service.enable_maintenance("db upgrade", enabled_by="alice")
    notifier = service.notifier
    assert notifier.deliver_now().retrying == 1
    wait_for(
        lambda: notifier.deliver_now().given_up == 1,
        timeout=settings.webhook_backoff_max + 5,
        what="given up after MAINTENANCE_WEBHOOK_RETRY_FOR",
    )
    health = notifier.health()
    assert health.failed == 1 and health.degraded and "given up" in str(health.reason)
    assert notifier.deliver_now().claimed == 0  # given up: not retried by itself
    failures = len(receiver.all())
    receiver.fail_first = 0  # the receiver is fixed
    again = subprocess.run(
        [MAINTENANCE_CLI, "notify", "deliver", "--retry-failed"],
        env=_cli_env(settings),
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(receiver.accepted()) == 1 and len(receiver.all()) == failures + 1
    assert not notifier.health().degraded


def test_a_redirect_is_a_failure_and_is_not_followed(
    make_receiver: Callable[..., Receiver],
    redis_url: str,
    prefix: str,
    sqlite_url: str,
    services: list[EnhancedMaintenanceModeService],
) -> None:
    elsewhere = make_receiver()
    receiver = make_receiver(redirect_to=f"{elsewhere.url}/stolen")
    settings = notify_settings(redis_url, sqlite_url, prefix, [f"{receiver.url}/hook"])
    service = _service(services, settings, kind="cli", register=False)
    service.enable_maintenance("db upgrade", enabled_by="alice")
    report = service.notifier.deliver_now()
    assert report.retrying == 1 and "HTTP 302" in report.errors[0]
    assert elsewhere.all() == []
