"""Pure pieces of the Celery side: precedence, canvas traversal, message records, admission."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import redis
from celery import Celery, chain, chord, group

from maintenance import MaintenanceOperationClassifier, MaintenanceStatus, OperationType
from maintenance.domain.modes import MaintenanceMode
from maintenance.keys import Keys
from signals import admission
from signals.canvas import iter_members
from signals.errors import EXIT_REFUSED, PublishRefused
from workers.operations import resolve_operation
from workers.records import original_order, publish_options, record_from_message
from workers.requeue import is_second_copy, release_attempt

classifier = MaintenanceOperationClassifier()


def test_operation_precedence_is_call_then_task_then_classifier():
    """Per call beats per task beats the classifier's rules on the name."""
    task = SimpleNamespace(operation_type="read_operations")
    name = "captions.generate_caption"
    assert resolve_operation(name, classifier) is OperationType.CAPTION_GENERATION
    assert resolve_operation(name, classifier, task=task) is OperationType.READ_OPERATIONS
    assert (
        resolve_operation(name, classifier, task=task, override="batch_operations")
        is OperationType.BATCH_OPERATIONS
    )
    assert resolve_operation("maintenance.status_check", classifier) is (
        OperationType.ADMIN_OPERATIONS
    )


def test_canvas_members_are_found_however_deeply_nested():
    """Groups, chains, chord headers and bodies, and links of members are all visited."""
    app = Celery("units", set_as_current=False)
    a, b, c, d, e = (app.signature(f"t.{x}") for x in "abcde")
    a.link(app.signature("t.link"))
    canvas = chain(group(a, b), chord([c, d], e))
    assert sorted(name for name, _ in iter_members(canvas)) == [
        "t.a",
        "t.b",
        "t.c",
        "t.d",
        "t.e",
        "t.link",
    ]


def test_a_message_becomes_a_record_that_republishes_it_faithfully():
    """Links, chain, chord, eta, group, priority, custom headers and the queue survive."""
    link = {"task": "notify", "args": [], "kwargs": {}, "options": {}}
    headers = {
        "task": "captions.generate_caption",
        "id": "abc",
        "eta": "2030-01-01T00:00:00+00:00",
        "group": "g1",
        "group_index": 2,
        "retries": 1,
        "timelimit": [60, 30],
        "root_id": "r",
        "parent_id": "p",
        "tenant": "acme",
        "maintenance_operation": "caption_generation",
        "maintenance_published_at": 12.5,
    }
    embed = {"callbacks": [link], "errbacks": None, "chain": [link], "chord": None}
    record = record_from_message(
        task_name="captions.generate_caption",
        task_id="abc",
        headers=headers,
        payload=([1], {"k": 2}, embed),
        delivery_info={"routing_key": "captions", "exchange": ""},
        properties={"priority": 5},
        operation="caption_generation",
        reason="blocked",
        worker="w1@host",
        activation_id="act",
    )
    assert record.args == [1] and record.kwargs == {"k": 2} and record.queue == "captions"
    assert record.options["link"] == [link] and record.options["chain"] == [link]
    assert record.options["eta"] == headers["eta"] and record.options["group_id"] == "g1"
    assert record.options["time_limit"] == 60 and record.options["soft_time_limit"] == 30
    assert record.options["priority"] == 5 and record.options["headers"] == {"tenant": "acme"}
    assert original_order(record) == (12.5, 0)
    assert "chord" not in publish_options(headers, embed, None, None)


def test_publish_refused_is_an_operation_blocked_click_error_that_pickles():
    """Callers catch OperationBlocked; `celery call` prints it and exits 75; pools pickle it."""
    status = MaintenanceStatus(is_active=True, mode=MaintenanceMode.NORMAL, reason="upgrade")
    exc = PublishRefused(OperationType.JOB_CREATION, status, 30, "task x was not queued: upgrade")
    assert exc.exit_code == EXIT_REFUSED and exc.format_message().endswith("upgrade")
    again = pickle.loads(pickle.dumps(exc))
    assert isinstance(again, PublishRefused) and again.retry_after == 30
    assert again.operation is OperationType.JOB_CREATION


def test_admission_of_running_jobs():
    """Started while off, or stamped continuation/bypass: admitted. Started during the
    same activation without a stamp: not. Under an earlier activation: admitted."""
    off = MaintenanceStatus()
    on = MaintenanceStatus(is_active=True, activation_id="A")
    later = MaintenanceStatus(is_active=True, activation_id="B")

    def task(task_id: str, **headers: object) -> SimpleNamespace:
        request = SimpleNamespace(id=task_id, get=lambda k, d=None: headers.get(k, d))
        return SimpleNamespace(request=request)

    admission.job_started("before", "caption_generation", off, task("before").request)
    admission.job_started("during", "read_operations", on, task("during").request)
    stamped = task("cont", maintenance_continuation=True)
    admission.job_started("cont", "caption_generation", on, stamped.request)
    try:
        assert admission.is_continuation(task("before"), on)
        assert not admission.is_continuation(task("during"), on)
        assert admission.is_continuation(task("during"), later)
        assert admission.is_continuation(stamped, on)
        assert admission.is_continuation(task("untracked"), on)
    finally:
        for task_id in ("before", "during", "cont"):
            admission.job_ended(task_id)


def test_binding_recognises_the_process_default_before_building_it():
    """A disable by the process's default service is answered by an app whose binding
    has not built its (default) service yet -- and only by such an app."""
    from maintenance import set_default_service
    from workers.binding import Binding

    default, other = object(), object()
    lazy = Binding(Celery("lazy", set_as_current=False), None)
    explicit = Binding(Celery("explicit", set_as_current=False), other)  # type: ignore[arg-type]
    set_default_service(default)  # type: ignore[arg-type]
    try:
        assert lazy.uses(default) and not lazy.uses(other)  # type: ignore[arg-type]
        assert explicit.uses(other) and not explicit.uses(default)  # type: ignore[arg-type]
    finally:
        set_default_service(None)


def test_a_stampless_message_is_told_apart_by_what_stamps_it_carries():
    """No stamp: a publisher without hooks. Only a publish time after the rehearsal began and
    its fenced wait: not judged by a gate. Earlier: backlog (or racing the propagation)."""
    from datetime import timedelta

    from maintenance.domain.status import utcnow
    from maintenance.rehearsal_log import NO_HOOKS, NOT_JUDGED
    from workers.headers import PUBLISHED_AT, PUBLISHED_NS, unjudged_publish

    started = utcnow()
    status = MaintenanceStatus(is_active=True, mode=MaintenanceMode.TEST, started_at=started)
    origin = "gen42@host"
    assert unjudged_publish({"origin": origin}, status, 2.0) == (NO_HOOKS, origin)
    late = (started + timedelta(seconds=3)).timestamp()
    assert unjudged_publish({"origin": origin, PUBLISHED_AT: late}, status, 2.0) == (
        NOT_JUDGED,
        origin,
    )
    racing = (started + timedelta(seconds=1)).timestamp()
    assert unjudged_publish({"origin": origin, PUBLISHED_AT: racing}, status, 2.0) is None
    backlog = (started - timedelta(minutes=5)).timestamp()
    assert unjudged_publish({PUBLISHED_AT: backlog}, status, 2.0) is None
    # The stamp this version writes (integer nanoseconds); the float one above is what
    # earlier versions wrote, still read for messages queued before an upgrade.
    assert unjudged_publish({PUBLISHED_NS: int(late * 1e9)}, status, 2.0) == (NOT_JUDGED, None)
    assert unjudged_publish({PUBLISHED_NS: int(racing * 1e9)}, status, 2.0) is None


def test_a_refusal_is_found_in_an_exception_chain():
    """``task_postrun``'s error: the refusal itself, or an error raised from or while
    handling one (an app wrapping it), counts; anything else does not."""
    from maintenance import OperationBlocked
    from workers.emergency.abort import refused_by_maintenance

    refusal = OperationBlocked(OperationType.IMAGE_PROCESSING, MaintenanceStatus(), None)
    assert refused_by_maintenance(refusal) is refusal
    try:
        try:
            raise refusal
        except OperationBlocked as exc:
            raise RuntimeError("could not save") from exc
    except RuntimeError as wrapped:
        assert refused_by_maintenance(wrapped) is refusal
    assert refused_by_maintenance(ValueError("no")) is None
    assert refused_by_maintenance("SUCCESS") is None


def test_the_broker_identity_names_where_not_who(monkeypatch):
    """Transport, host, port, database and key prefix; never the password; ``localhost``
    and an empty Redis database say the same as ``127.0.0.1`` and ``/0``."""
    from workers.routing import broker_of

    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery reads it first

    def identity(url: str, prefix: str | None = None) -> str | None:
        app = Celery("identity", set_as_current=False)
        app.conf.broker_url = url
        if prefix:
            app.conf.broker_transport_options = {"global_keyprefix": prefix}
        return broker_of(app)

    assert identity("redis://:secret@localhost:6379/") == "redis://127.0.0.1:6379/0"
    assert identity("redis://127.0.0.1/1", "app:") == "redis://127.0.0.1:6379/1 prefix=app:"
    assert identity("redis://127.0.0.1:6379/0") != identity("redis://127.0.0.1:6379/1")
    amqp = identity("pyamqp://guest:guest@127.0.0.1:5672/vhost")
    assert amqp == "amqp://127.0.0.1:5672/vhost" and "guest" not in amqp


def test_a_requeued_copy_held_back_forgets_its_attempt_so_the_next_requeue_runs(
    redis_url: str, prefix: str
):
    """A worker remembers the first requeue attempt of an id it takes: a later attempt is
    a second copy. Held back instead (maintenance on again), that attempt is released:
    the job's next requeue under the same id is a first copy. Only the attempt held back
    is released, never one a worker runs."""
    client = redis.Redis.from_url(redis_url)
    keys = Keys(prefix)
    assert not is_second_copy(client, keys, "job-1", "attempt-a")
    assert not is_second_copy(client, keys, "job-1", "attempt-a")  # a redelivery runs
    assert is_second_copy(client, keys, "job-1", "attempt-b")
    release_attempt(client, keys, "job-1", "attempt-b")  # not the one remembered
    assert is_second_copy(client, keys, "job-1", "attempt-b")
    release_attempt(client, keys, "job-1", "attempt-a")
    assert not is_second_copy(client, keys, "job-1", "attempt-c")
