"""Recovery requeue: republish held-back jobs exactly once, in order.

Order is the original publish order (the gate stamps a publish time; two
workers deferring side by side record them interleaved).

Each record is claimed by a conditional ``UPDATE ... WHERE state IN
('deferred', 'terminated')`` before it is published (``JobStore.claim_batch``),
so two recoveries at once -- threads, processes or nodes -- never publish the
same job twice. A Redis lock serialises recoveries so jobs go out in their
original order; without Redis the SQL claim alone keeps it exactly-once.

Task ids (``requeue_id``): a *deferred* job never started and Celery never revoked
its id, so it goes out again under its original id -- the id a web route handed to
its user ends ``SUCCESS`` with the result. A *terminated* job's id was revoked (it
stays in the workers' revoke lists for hours) or already has a result the backend
keeps, so it goes out under a new id, and ``workers.result_link`` leads from the
old id to the new one.

Every publish is verified (``workers.route_check``): nothing is declared, and a
message no consumer's queue takes is reported failed, never requeued.

Owner of ``{p}:lock:recover`` and ``{p}:jobs:requeue-attempt:<id>``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.lock import Lock

from maintenance import EnhancedMaintenanceModeService
from maintenance import events as maintenance_events
from maintenance.keys import Keys
from maintenance.redisconn import REDIS_ERRORS, as_text
from maintenance.store.jobs import KIND_DEFERRED, JobRecord, JobStore

from . import flower, published, result_link, route_check, routing
from .headers import REQUEUE_ATTEMPT, REQUEUED_FROM
from .internal_publish import internal_publish
from .records import RECORD_ONLY_OPTIONS, original_order
from .republish import Republisher, SentEvents, needs_send_task

log = logging.getLogger("maintenance.celery")
LOCK_TTL = 300
#: How long a worker remembers the publish attempt of a requeued job it accepted.
ATTEMPT_TTL = 7 * 24 * 3600
#: A claim this old belongs to a recovery that died mid-way (a publish takes milliseconds).
STALE_CLAIM_SECONDS = 60.0
#: Records claimed, published and marked together (a recovery that dies mid-batch leaves
#: at most this many claims for a later one to finish).
BATCH_SIZE = 2000
#: Broker commands a batch buffers at most before sending them (Redis pipeline).
PIPELINE_SIZE = 1000


@dataclass
class RequeueReport:
    """What one recovery did."""

    requeued: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (old id, error)
    skipped: str | None = None  # why nothing was attempted
    refused: str | None = None  # jobs of another broker left alone (``workers.routing``)
    recovery_completed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "requeued": [{"original_id": o, "new_id": n} for o, n in self.requeued],
            "failed": [{"original_id": o, "error": e} for o, e in self.failed],
            "skipped": self.skipped,
            "refused": self.refused,
            "recovery_completed": self.recovery_completed,
        }


def requeue_id(record: JobRecord) -> str:
    """The id ``record``'s job goes out under: its own when it was deferred (never
    started, never revoked), else a new one (see the module docstring)."""
    if record.kind == KIND_DEFERRED:
        return record.original_id
    return str(uuid.uuid4())


def publish_record(app: Any, record: JobRecord, new_id: str) -> None:
    """Publish ``record`` again under ``new_id`` into its original queue (gate bypassed),
    verified to reach a queue a consumer is bound to (``workers.route_check``), on a
    connection of its own whose publish waits for the broker's confirm.

    Each publish carries an attempt token: if a recovery died after publishing
    but before recording it, the copy a later recovery publishes under the same
    id is dropped by the worker that sees the second attempt (``is_second_copy``).

    Raises only when nothing was published (or the broker did not take it into a
    queue): a failure after the message went out (the result backend) is logged, and
    the job counts as published.
    """
    with route_check.confirming_connection(app) as conn:
        producer = app.amqp.Producer(conn, auto_declare=False)
        _send(app, Republisher(app), record, new_id, conn, producer, set())
    result_link.link(app, record.original_id, new_id)  # AsyncResult(old id) leads here


def _outgoing(
    app: Any, record: JobRecord, new_id: str, attempt: str | None = None
) -> tuple[dict[str, Any], route_check.Route]:
    """The ``send_task`` options that publish ``record`` again under ``new_id``: its own,
    its requeue headers (``attempt``: the attempt token, else a new one), its route,
    verified (``route_check.VERIFIED_PUBLISH``)."""
    options = {k: v for k, v in record.options.items() if k not in RECORD_ONLY_OPTIONS}
    headers = dict(options.pop("headers", None) or {})
    headers[REQUEUED_FROM] = record.original_id
    headers[REQUEUE_ATTEMPT] = attempt or uuid.uuid4().hex
    options["headers"] = headers
    queue = route_check.queue_name(app, record.queue)
    options["queue"] = queue
    route = route_check.Route.of(record.options, queue)
    options.update(route.publish_options())
    options.update(route_check.VERIFIED_PUBLISH)
    return options, route


def _send(
    app: Any,
    republisher: Republisher,
    record: JobRecord,
    new_id: str,
    connection: Any,
    producer: Any,
    bound: set[route_check.Route],
    attempt: str | None = None,
    **extra: Any,
) -> None:
    """Publish ``record`` under ``new_id`` on ``producer`` (``workers.republish``; a
    record it leaves to Celery, through ``send_task``), its route checked bound once per
    ``bound`` (a batch's); ``extra``: more publish options. Raises ``Unroutable``, or what
    publishing raised, when nothing went out; a failure after the message went out is
    logged, and it counts as published."""
    options, route = _outgoing(app, record, new_id, attempt)
    options.update(extra)
    if route not in bound:
        route_check.check_bound(app, connection, route)
        bound.add(route)
    with published.watch() as sent:
        try:
            if not republisher.publish(
                producer, record.task_name, record.args, record.kwargs, new_id, options
            ):
                with internal_publish("recovery"):
                    app.send_task(
                        record.task_name,
                        args=record.args,
                        kwargs=record.kwargs,
                        task_id=new_id,
                        producer=producer,
                        **options,
                    )
        except Exception as exc:
            if new_id not in sent:
                bound.clear()
                returned = route_check.returned(exc, route)
                if returned is None:
                    raise
                raise returned from exc
            log.error(
                "maintenance: requeue of %s published as %s, then failed (%s); "
                "it counts as published",
                record.original_id,
                new_id,
                exc,
            )


def is_second_copy(client: redis.Redis, keys: Keys, task_id: str, attempt: str) -> bool:
    """Whether a worker receiving requeued ``task_id`` with ``attempt`` has a *second
    publish* of a job already accepted (raises what Redis raises).

    The first attempt a worker sees is remembered; the same attempt again is a
    redelivery (worker lost, visibility timeout) and runs; another attempt is the
    copy a later recovery published after one died mid-way, and is dropped.
    """
    key = keys.requeue_attempt(task_id)
    if client.set(key, attempt, nx=True, ex=ATTEMPT_TTL):
        return False
    seen = client.get(key)
    return seen is not None and as_text(seen) != attempt


#: Delete KEYS[1] only while it holds ARGV[1].
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def release_attempt(client: redis.Redis, keys: Keys, task_id: str, attempt: str) -> None:
    """A worker held back the requeued ``task_id`` of ``attempt`` instead of running it:
    forget that attempt, so the job's next requeue (under the same id) is accepted as a
    first copy (raises what Redis raises)."""
    client.eval(_RELEASE, 1, keys.requeue_attempt(task_id), attempt)


def _recover_lock(client: redis.Redis, keys: Keys, wait: float) -> Lock | None:
    """The recovery lock, held; None when busy for ``wait`` seconds or Redis is down
    (the recovery then proceeds on its SQL claims alone)."""
    lock = client.lock(keys.lock_recover, timeout=LOCK_TTL, sleep=0.05, blocking_timeout=wait)
    try:
        if lock.acquire():
            return lock
        log.warning("recovery lock busy for %.0fs; proceeding on SQL claims", wait)
    except REDIS_ERRORS as exc:
        log.warning("recovery lock unavailable (%s); proceeding on SQL claims", exc)
    return None


def requeue_jobs(
    app: Any,
    service: EnhancedMaintenanceModeService,
    *,
    actor: str = "recovery",
    limit: int | None = None,
    force: bool = False,
    use_lock: bool = True,
    lock_wait: float = 60.0,
    stale_after: float = STALE_CLAIM_SECONDS,
    batch_size: int = BATCH_SIZE,
) -> RequeueReport:
    """Republish every requeueable job (deferred or terminated, rerun-safe) exactly once.

    Refuses while maintenance is on (the jobs would only be deferred again)
    unless ``force``. Clears ``recovery_pending`` in the status once nothing
    is left to requeue.

    Works in batches of ``batch_size`` records, in original order: one ``UPDATE``
    claims a batch, its messages go out one after another on one connection and
    producer (``workers.republish``; each queue's binding checked once per batch;
    Redis: one pipeline; RabbitMQ: one write, confirms collected per batch), one
    ``UPDATE`` marks the published ones requeued and their Flower events go out
    together. A batch is settled (confirms read) after the next one went out, so the
    broker confirms one while the recovery publishes the next; claiming the next batch
    and marking a settled one happen on a thread of their own (``_SQL``), so the
    database's commits overlap the publishing too.
    """
    report = RequeueReport()
    current = service.state.load()
    if current.is_active and not force:
        report.skipped = "maintenance is active; deferred jobs stay deferred until it ends"
        return report
    store = JobStore(service.db)
    lock = _recover_lock(service.redis, service.keys, lock_wait) if use_lock else None
    try:
        with flower.dispatcher(app) as eventer, contextlib.ExitStack() as connections:
            waiting = _here(app, report, sorted(store.requeueable(), key=original_order))
            publisher = _Publisher(app, connections)
            waiting = waiting[:limit]
            batches = [waiting[at : at + batch_size] for at in range(0, len(waiting), batch_size)]
            with _SQL(service, report, eventer, publisher) as sql:
                claims = sql.claim(batches[0]) if batches else None
                pending: _Sent | None = None
                for number, batch in enumerate(batches):
                    claimed = claims.result() if claims is not None else {}
                    if number + 1 < len(batches):  # claimed while this batch goes out
                        claims = sql.claim(batches[number + 1])
                    sent = _publish_batch(store, report, publisher, batch, claimed)
                    if pending is not None:  # confirmed while this batch went out
                        _settle(sql, store, report, publisher, pending)
                    pending = sent
                if pending is not None:
                    _settle(sql, store, report, publisher, pending)
            for record in _here(app, report, store.stale_claims(stale_after)):
                _redrive(app, service, store, report, eventer, record)
    finally:
        if lock is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                lock.release()
    _finish(service, store, report, actor)
    return report


class _Publisher:
    """One connection and one producer for every publish of a recovery, the queues
    checked bound in the current batch, and on RabbitMQ (py-amqp) the channel's
    ``route_check.Confirms``. A batch that failed as a whole drops the producer (and
    its channel): the next batch starts on a new one."""

    def __init__(self, app: Any, connections: contextlib.ExitStack) -> None:
        self.app = app
        self._connections = connections
        self._connection: Any = None
        self.producer: Any = None
        self.confirms: route_check.Confirms | None = None
        self.bound: set[route_check.Route] = set()
        self.republisher = Republisher(app)
        self.events = SentEvents(app, connections)
        self._coalesced: route_check.CoalescedWrites | None = None
        #: Attempt tokens: unique to this recovery, then one number per publish (a
        #: random token each would cost a read of the system's randomness per job).
        prefix = uuid.uuid4().hex
        self._attempts = (f"{prefix}-{n}" for n in itertools.count())

    @property
    def connection(self) -> Any:
        """The recovery's broker connection, opened on first use (a recovery with
        nothing to publish needs neither a broker nor a Celery app): on py-amqp one
        whose batches collect their confirms (``route_check.Confirms``), else one whose
        publishes wait for the broker's confirm where the transport has them."""
        if self._connection is None:
            plain = self.app.connection_for_write()
            if route_check.batch_confirmable(plain):
                self._connection = self._connections.enter_context(plain)
            else:
                plain.release()
                self._connection = self._connections.enter_context(
                    route_check.confirming_connection(self.app)
                )
        return self._connection

    def _producer(self) -> Any:
        if self.producer is None:
            conn = self.connection
            if route_check.batch_confirmable(conn):
                channel = conn.channel()
                self.confirms = route_check.Confirms(channel)
                self.producer = self.app.amqp.Producer(channel, auto_declare=False)
            else:
                self.producer = self.app.amqp.Producer(conn, auto_declare=False)
        return self.producer

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """The publishes inside go out together at its end where the transport batches
        them (Redis: one pipeline, the binding tables read once; RabbitMQ: their frames
        in one write, confirmed later -- ``settle``); raises when that final send fails
        (then which went out is unknown)."""
        self.bound.clear()
        producer = self._producer()
        self._coalesced = (
            route_check.CoalescedWrites(self.connection) if self.confirms is not None else None
        )
        try:
            with (
                route_check.tables_read_once(self.connection),
                self._coalesced or contextlib.nullcontext(),
                producer.batch(max_size=PIPELINE_SIZE),
            ):
                yield
        finally:
            self._coalesced = None
            self.events.flush()  # the batch's task-sent events, before its task-requeued

    def settle(self, sent: _Sent) -> tuple[set[str], dict[str, BaseException]]:
        """Wait for the broker's confirms of ``sent`` (RabbitMQ): the ids it nacked, and
        those it returned unroutable (with its error); raises when they do not come."""
        if sent.confirms is None:
            return set(), {}
        sent.confirms.wait(self.connection, sent.upto)
        return sent.confirms.take(new_id for _, new_id in sent.records)

    def reset(self, why: BaseException) -> None:
        """A new channel and producer for what follows (after a failed batch): the
        confirms still awaited on the old one will not come."""
        if self.confirms is not None:
            self.confirms.broken = why
            with contextlib.suppress(Exception):
                self.confirms.channel.close()
        self.producer = None
        self.confirms = None
        self.bound.clear()

    def publish(self, record: JobRecord, new_id: str) -> None:
        """Publish ``record`` under ``new_id`` in the current batch (raises as ``_send``)."""
        writes_through = (
            self._coalesced.paused()
            if self._coalesced is not None and needs_send_task(record.options)
            else contextlib.nullcontext()
        )
        with writes_through:
            _send(
                self.app,
                self.republisher,
                record,
                new_id,
                self.connection,
                self._producer(),
                self.bound,
                next(self._attempts),
                retry=False,  # a batch fails as a whole instead (its claims stay, ``_redrive``)
                event_dispatcher=self.events,
            )
        if self.confirms is not None:
            self.confirms.expect(new_id)


@dataclass
class _Sent:
    """A batch whose messages went out: confirmed (RabbitMQ) up to ``upto`` on
    ``confirms``, or already in the broker (``confirms`` None)."""

    records: list[tuple[JobRecord, str]]
    confirms: route_check.Confirms | None = None
    upto: int = 0


class _SQL:
    """The recovery's SQL work off the publishing thread, in order, on one thread:
    claiming the next batch (``claim``) and marking a settled one requeued with its
    Flower events and notifications (``published``). Leaving the block waits for it."""

    #: On the connection the thread holds (``__enter__``).
    store: JobStore

    def __init__(
        self,
        service: EnhancedMaintenanceModeService,
        report: RequeueReport,
        eventer: Any,
        publisher: _Publisher,
    ) -> None:
        self.service, self.report = service, report
        self.eventer, self.app = eventer, publisher.app
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="requeue-sql")
        self._connection = contextlib.ExitStack()

    def __enter__(self) -> _SQL:
        # Its transactions, one after another on its thread, share one connection.
        self.store = JobStore(self._connection.enter_context(self.service.db.pinned()))
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._thread.shutdown(wait=True)
        finally:
            self._connection.close()

    def claim(self, batch: list[JobRecord]) -> Future[dict[int, str]]:
        """Claim ``batch`` (one statement): the future of the claimed records' reserved
        ids (the others: another recovery took them)."""

        def claim() -> dict[int, str]:
            new_ids = {_record_id(r): requeue_id(r) for r in batch}
            claimed = self.store.claim_batch(batch, new_ids)
            return {i: new_id for i, new_id in new_ids.items() if i in claimed}

        return self._thread.submit(claim)

    def published(self, done: list[tuple[JobRecord, str]]) -> None:
        """``_published_many`` of ``done``, after what was handed over before (a failure
        there is logged: the jobs went out)."""

        def published() -> None:
            try:
                _published_many(self.app, self.service, self.store, self.report, self.eventer, done)
            except Exception:
                log.exception("maintenance: recording %d requeued job(s) failed", len(done))

        self._thread.submit(published)


def _publish_batch(
    store: JobStore,
    report: RequeueReport,
    publisher: _Publisher,
    batch: list[JobRecord],
    claimed: dict[int, str],
) -> _Sent | None:
    """Publish the records of ``batch`` this recovery ``claimed`` (record id -> reserved
    task id), in order; None when the batch's final send failed."""
    sent: list[tuple[JobRecord, str]] = []
    try:
        with publisher.batch():
            for record in batch:
                new_id = claimed.get(_record_id(record))
                if new_id is None:
                    continue
                try:
                    publisher.publish(record, new_id)
                except Exception as exc:
                    _failed(store, report, record, exc)
                    continue
                sent.append((record, new_id))
    except Exception as exc:
        _unconfirmed(report, publisher, sent, exc)
        return None
    confirms = publisher.confirms
    return _Sent(sent, confirms, confirms.last if confirms is not None else 0)


def _unconfirmed(
    report: RequeueReport,
    publisher: _Publisher,
    sent: list[tuple[JobRecord, str]],
    exc: BaseException,
) -> None:
    """The batch's final send (or the broker's confirms) failed: which of its messages
    reached a queue is unknown. Their claims stay (reserved ids): a later recovery
    publishes them again (``_redrive``) and the worker keeps one copy of each (the
    attempt token)."""
    publisher.reset(exc)
    for record, _new_id in sent:
        report.failed.append((record.original_id, f"publish not confirmed: {exc}"))
    log.error("maintenance: %d requeue publish(es) not confirmed: %s", len(sent), exc)


def _settle(
    sql: _SQL, store: JobStore, report: RequeueReport, publisher: _Publisher, sent: _Sent
) -> None:
    """Record what became of a batch that went out: those the broker returned or nacked
    failed (released), the others requeued (one statement, on ``sql``'s thread)."""
    try:
        nacked, returned = publisher.settle(sent)
    except Exception as exc:
        _unconfirmed(report, publisher, sent.records, exc)
        return
    done: list[tuple[JobRecord, str]] = []
    for record, new_id in sent.records:
        if new_id in returned:
            route = route_check.Route.of(
                record.options, route_check.queue_name(publisher.app, record.queue)
            )
            why = returned[new_id]
            _failed(store, report, record, route_check.returned(why, route) or why)
        elif new_id in nacked:
            _failed(store, report, record, RuntimeError("the broker refused the message (nack)"))
        else:
            done.append((record, new_id))
    sql.published(done)


def _failed(store: JobStore, report: RequeueReport, record: JobRecord, exc: BaseException) -> None:
    """Nothing of ``record`` reached a queue: back to where a later recovery finds it."""
    store.release_claim(record, outcome=f"requeue failed: {exc}"[:32])
    report.failed.append((record.original_id, str(exc)))
    log.error("maintenance: requeue of %s failed: %s", record.original_id, exc)


def _record_id(record: JobRecord) -> int:
    if record.id is None:
        raise ValueError(f"job record {record.original_id} has not been stored")
    return record.id


def _published_many(
    app: Any,
    service: EnhancedMaintenanceModeService,
    store: JobStore,
    report: RequeueReport,
    eventer: Any,
    done: list[tuple[JobRecord, str]],
) -> None:
    """``_published`` for a batch: one statement marks them, one flush sends the events."""
    if not done:
        return
    report.requeued.extend((record.original_id, new_id) for record, new_id in done)
    try:
        store.mark_requeued_many(record for record, _ in done)
    except Exception as exc:
        log.error(
            "maintenance: %d job(s) from %s on were requeued but not marked so: %s",
            len(done),
            done[0][0].original_id,
            exc,
        )
    for record, new_id in done:
        result_link.link(app, record.original_id, new_id)  # AsyncResult(old id) leads here
        flower.send_requeued(eventer, record, new_id)
        maintenance_events.emit(maintenance_events.job_requeued, service, job=record, new_id=new_id)
    flower.flush(eventer)


def _here(app: Any, report: RequeueReport, records: list[JobRecord]) -> list[JobRecord]:
    """``records`` that came from ``app``'s broker; the others are refused (left for a
    recovery whose app reaches their broker), never published elsewhere."""
    foreign = routing.elsewhere(app, records)
    if not foreign:
        return records
    report.refused = routing.refusal(app, foreign)
    log.warning("maintenance: recovery refused: %s", report.refused)
    skip = {r.original_id for r in foreign}
    return [r for r in records if r.original_id not in skip]


def _published(
    service: EnhancedMaintenanceModeService,
    store: JobStore,
    report: RequeueReport,
    eventer: Any,
    record: JobRecord,
    new_id: str,
) -> None:
    """Record a publish that happened. Nothing here may undo it: a failure is logged (a
    claim left unmarked is finished by a later recovery's ``_redrive``, whose copy the
    worker drops as a second attempt)."""
    report.requeued.append((record.original_id, new_id))
    try:
        store.mark_requeued(record)
    except Exception as exc:
        log.error(
            "maintenance: %s was requeued as %s but not marked so: %s",
            record.original_id,
            new_id,
            exc,
        )
    flower.send_requeued(eventer, record, new_id)
    maintenance_events.emit(maintenance_events.job_requeued, service, job=record, new_id=new_id)


def _redrive(
    app: Any,
    service: EnhancedMaintenanceModeService,
    store: JobStore,
    report: RequeueReport,
    eventer: Any,
    record: JobRecord,
) -> None:
    """Finish a claim whose recovery died: publish again under the id it reserved.

    Whether its first publish happened is unknown; the worker keeps exactly one
    of the copies (the attempt token), so publishing again is safe.
    """
    new_id = record.requeued_id
    if not new_id or not store.retake_claim(record):
        return
    try:
        publish_record(app, record, new_id)  # confirmed on a connection of its own
    except Exception as exc:
        report.failed.append((record.original_id, str(exc)))
        log.error("maintenance: requeue of %s failed again: %s", record.original_id, exc)
        return
    log.warning(
        "maintenance: finished the requeue of %s left by a recovery that died", record.original_id
    )
    _published(service, store, report, eventer, record, new_id)


def _finish(
    service: EnhancedMaintenanceModeService, store: JobStore, report: RequeueReport, actor: str
) -> None:
    if report.requeued or report.failed:
        service.record_event(
            "jobs_requeued",
            actor,
            details={
                "requeued": len(report.requeued),
                "failed": len(report.failed),
                "jobs": [list(pair) for pair in report.requeued[:1000]],
            },
        )
        log.info(
            "maintenance: requeued %d job(s), %d failed", len(report.requeued), len(report.failed)
        )
    current = service.state.load()
    if report.failed or current.is_active or store.requeueable(limit=1):
        return
    if current.recovery_pending:
        service.update_status(actor, "recovery_completed", recovery_pending=False)
    report.recovery_completed = True
