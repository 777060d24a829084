"""The publish gate refuses for real: every publish path, nothing reaches the broker.

Each refused publish is aimed at a queue no worker consumes, so the broker's
own bookkeeping (the queue list and the unacked hash) shows whether anything
got through; an allowed publish to the same queue proves the probe counts.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from celery import Celery, chain, chord, group, signature
from celery.beat import ScheduleEntry, Scheduler, SchedulingError

import signals
from maintenance import OperationBlocked, OperationType
from signals import EXIT_REFUSED, PublishRefused
from workers.headers import BYPASS, CONTINUATION, OPERATION, PUBLISHER, VERSION

from .conftest import ADMIN, ROOT, Fleet

pytestmark = pytest.mark.slow


def _nothing_sent(fleet: Fleet, queue: str) -> None:
    assert fleet.queue_length(queue) == 0
    assert fleet.unacked() == 0


def test_every_publish_path_is_refused_and_nothing_reaches_the_broker(clean_fleet, probe_app):
    """delay, apply_async, send_task (registered and not), signatures, group, chain, chord
    and link: each raises OperationBlocked in the caller and publishes nothing."""
    fleet = clean_fleet
    app, queue = probe_app
    caption = app.tasks["captions.generate_caption"]
    report = app.tasks["reports.build"]
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")

    attempts = {
        "delay": lambda: caption.delay("x"),
        "apply_async": lambda: caption.apply_async(("x",), countdown=5),
        "send_task registered": lambda: app.send_task("captions.generate_caption", ("x",)),
        "send_task unregistered": lambda: app.send_task("remote.generate_caption_v2", ("x",)),
        "send_task by keyword": lambda: app.send_task(
            name="captions.generate_caption", args=("x",), kwargs={}
        ),
        "send_task, args by keyword": lambda: app.send_task(
            "captions.generate_caption", kwargs={"label": "x"}
        ),
        "signature.delay": lambda: signature(
            "captions.generate_caption", args=("x",), app=app
        ).delay(),
        "signature.apply_async": lambda: caption.s("x").apply_async(),
        "group (allowed member first)": lambda: group(report.s("ok"), caption.s("x")).apply_async(),
        "chain": lambda: chain(report.s("ok"), caption.si("x")).apply_async(),
        "chord body": lambda: chord(
            [report.s("ok"), report.s("ok2")], caption.si("x")
        ).apply_async(),
        "link": lambda: report.apply_async(("ok",), link=caption.si("x")),
        "per-call type": lambda: report.apply_async(("ok",), operation_type="image_processing"),
    }
    for path, publish in attempts.items():
        with pytest.raises(OperationBlocked) as refused:
            publish()
        assert isinstance(refused.value, PublishRefused), path
        assert "maintenance" in refused.value.message, path
        assert refused.value.retry_after is not None and refused.value.retry_after > 0
        _nothing_sent(fleet, queue)

    with pytest.raises(TypeError, match="'name'"):  # as Celery's own, judged or not
        app.send_task(args=("x",))
    _nothing_sent(fleet, queue)

    # The probe counts: an operation maintenance does not block goes through, by
    # keyword too, judged as its own type and stamped.
    report.delay("allowed")
    app.send_task(name="reports.build", args=("by-keyword",), countdown=0)
    assert fleet.queue_length(queue) == 2
    sent = fleet.queued_messages(queue)
    assert [m["headers"][OPERATION] for m in sent] == ["read_operations"] * 2
    counted = fleet.service.get_maintenance_status().extra["blocked_attempts"]
    assert counted[OperationType.CAPTION_GENERATION.value] >= 11
    assert counted[OperationType.IMAGE_PROCESSING.value] == 1


def test_beat_scheduled_publish_is_refused(clean_fleet, probe_app):
    """Celery beat's own Scheduler.apply_async hits the gate; the entry publishes nothing."""
    fleet = clean_fleet
    app, queue = probe_app
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    scheduler = Scheduler(app, schedule={}, lazy=True)
    for name in ("captions.generate_caption", "remote.thumbnail_images"):
        entry = ScheduleEntry(name="nightly", task=name, schedule=60.0, args=("x",), app=app)
        with pytest.raises(SchedulingError, match="maintenance"):
            scheduler.apply_async(entry, advance=False)
    _nothing_sent(fleet, queue)


def test_celery_call_from_the_shell_exits_non_zero_with_the_message(clean_fleet, probe_app):
    """`celery -A app call name` (hooks installed by celeryconfig) prints the message, exits 75."""
    fleet = clean_fleet
    _, queue = probe_app
    fleet.service.enable_maintenance("storage migration", "30m", enabled_by="ops")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery.app",
            "call",
            "captions.generate_caption",
            "--args",
            '["from-shell"]',
            "--queue",
            queue,
        ],
        cwd=ROOT,
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EXIT_REFUSED, result.stderr
    assert "storage migration" in result.stderr
    assert "Traceback" not in result.stderr
    _nothing_sent(fleet, queue)

    fleet.service.disable_maintenance("ops", requeue=False)
    allowed = subprocess.run(
        [
            *(sys.executable, "-m", "celery", "-A", "tests.celery.app", "call", "reports.build"),
            *("--args", '["from-shell"]', "--queue", queue),
        ],
        cwd=ROOT,
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert fleet.queue_length(queue) == 1


def test_admin_bypass_publishes_with_stamped_headers(clean_fleet, probe_app):
    """Inside service.bypass(admin) the publish goes through, stamped with who bypassed."""
    fleet = clean_fleet
    app, queue = probe_app
    status = fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops").status
    with fleet.service.bypass(ADMIN):
        app.tasks["captions.generate_caption"].delay("admin-run")
    (message,) = fleet.queued_messages(queue)
    headers = message["headers"]
    assert headers[OPERATION] == "caption_generation"
    assert headers[VERSION] == status.version
    assert headers[PUBLISHER] == fleet.service.cache.node_id
    assert headers[BYPASS] == "root"
    assert CONTINUATION not in headers


def test_task_option_and_precedence(clean_fleet, probe_app):
    """Per-task operation_type beats the classifier; a per-call option beats both."""
    fleet = clean_fleet
    app, queue = probe_app
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops")
    report = app.tasks["reports.build"]  # name says UNKNOWN (blocked); the task says read
    report.delay("fine")
    with pytest.raises(PublishRefused):
        app.send_task("reports.build", ("x",), operation_type="batch_operations")
    assert [m["headers"][OPERATION] for m in fleet.queued_messages(queue)] == ["read_operations"]


def test_test_mode_blocks_nothing_and_records_would_block(clean_fleet, probe_app):
    """TEST maintenance: the publish is sent and counted as would-have-been-blocked."""
    fleet = clean_fleet
    app, queue = probe_app
    fleet.service.enable_maintenance("rehearsal", "30m", mode="test", enabled_by="ops")
    app.tasks["captions.generate_caption"].delay("rehearsed")
    assert fleet.queue_length(queue) == 1
    extra = fleet.service.get_maintenance_status().extra
    assert extra["would_block_attempts"]["caption_generation"] == 1


def test_an_unreachable_control_plane_never_breaks_a_publish(clean_fleet, monkeypatch):
    """SQL refuses connections when the publisher starts: the control plane comes up
    degraded (status from Redis, nothing written) and publishes still go through."""
    from maintenance import factory, set_default_service

    fleet = clean_fleet
    queue = f"{fleet.prefix}-failopen"
    monkeypatch.setenv("REDIS_URL", fleet.env["REDIS_URL"])
    monkeypatch.setenv("MAINTENANCE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    saved = factory._default
    set_default_service(None)
    try:
        app = Celery("failopen", set_as_current=False)
        app.conf.update({**fleet.config, "task_default_queue": queue})
        binding = signals.install(app)
        app.send_task("captions.generate_caption", ("x",))
        assert binding.has_service()
        assert fleet.queue_length(queue) == 1
    finally:
        set_default_service(saved)
        fleet.client.delete(f"{fleet.broker_prefix}{queue}")
