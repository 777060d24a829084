"""Worker-side gate: messages of blocked types are deferred, never started.

Backlog queued before maintenance and stragglers from ungated publishers are
caught at two points of the worker main process, neither using a pool slot:

* on receipt -- each task's strategy (``worker/strategy.py`` ``default``, built
  per task by ``Consumer.update_strategies``) is wrapped by a consumer bootstep
  started right after the ``Tasks`` step that builds them (and again after a
  connection restart, which rebuilds them);
* on dispatch -- prefetched messages wait in the worker's semaphore
  (``WorkController._process_task_sem``, prefork with the event loop) and are
  handed to ``WorkController._process_task`` only when a pool slot frees, so
  that hook judges them at the moment they would start. ETA messages are judged
  there too, when due. A message already let through on receipt under the
  maintenance status still in force is not judged again.

A deferred message is recorded in SQL (once per task id), announced to Flower
(``task-deferred``) and acknowledged. On receipt, with an event loop, blocked messages
wait a moment to be deferred together (``signals.defer_batch``: one SQL transaction per
batch); on dispatch each is deferred at once. Jobs of unblocked types run normally.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

from celery import bootsteps
from celery.utils.log import get_logger
from celery.worker.state import task_ready

from maintenance import Decision
from maintenance.redisconn import REDIS_ERRORS
from maintenance.store.jobs import KIND_DEFERRED
from workers.binding import Binding, binding_of
from workers.deferral import Deferral, defer
from workers.headers import CONTINUATION, REQUEUE_ATTEMPT, VERSION, bypass_user, unjudged_publish
from workers.operations import operation_of
from workers.queue_hold import QueueHold
from workers.records import record_from_message, record_from_request
from workers.requeue import is_second_copy
from workers.routing import broker_of

from .defer_batch import DeferBatch, Held
from .redis_sweep import RedisSweep

log = logging.getLogger("maintenance.celery")
celery_logger = get_logger(__name__)
#: How many receipt verdicts a gate remembers for the dispatch step (oldest dropped first).
_JUDGED_LIMIT = 4096


@dataclass(frozen=True)
class Verdict:
    """Why a message must be deferred."""

    operation: str
    reason: str
    activation_id: str | None


class _Action(str):
    """A receipt that is not a deferral (``WorkerGate.judge_receipt``)."""


DROP, RUN, ALLOWED, HOLD = (_Action(a) for a in ("drop", "run", "allowed", "hold"))
#: What receiving a message does: one of the four actions, or the ``Verdict`` deferring it.
Receipt = _Action | Verdict


class WorkerGate:
    """Judges messages in the worker main process and defers the blocked ones."""

    def __init__(self, binding: Binding, consumer: Any) -> None:
        self.binding = binding
        self.consumer = consumer
        self.app = consumer.app
        #: task id -> status version under which its message was let through on receipt.
        self._judged: dict[str, int] = {}
        #: The queues this worker holds in the broker (None: ``MAINTENANCE_HOLD_QUEUES`` off).
        self.hold: QueueHold | None = None
        self._batch: DeferBatch | None = None
        #: Takes a Redis queue's blocked backlog in bulk (None: not on kombu's Redis).
        self.sweep: RedisSweep | None = None

    def batch(self) -> DeferBatch:
        """The batch this gate's blocked messages wait in (``signals.defer_batch``)."""
        if self._batch is None:
            self._batch = DeferBatch(self.consumer, self.binding.service)
        return self._batch

    def flush(self) -> None:
        """Defer what waits in the batch now, and lower the prefetch it raised (the
        consumer stops)."""
        if self._batch is None:
            return
        if self._batch.pending:
            log.info(
                "maintenance: consumer stopping; deferring the %d blocked message(s) it holds",
                len(self._batch.pending),
            )
            self._batch.flush()
        self._batch.release_window()

    # -- decision ----------------------------------------------------------------
    def engaged(self) -> bool:
        """Cheap test: is there anything to judge right now?"""
        service = self.binding.try_service()
        if service is None:
            return False
        return service.cache.status.is_active or service.settings.fail_closed

    def verdict(
        self, name: str, task_id: str, headers: Any, task: Any = None, *, exemption: bool = True
    ) -> Verdict | None:
        """None when the message may run now; else why it is deferred.

        ``exemption=False``: ``allow_operation_completion`` is not read (a Redis round
        trip); the caller reads it for many messages at once (``signals.defer_batch``).
        During a rehearsal the decision is timed (``service.gate_timings``).
        """
        service = self.binding.service
        status = service.cache.status
        if not status.test_mode:
            return self._verdict(service, name, task_id, headers, task, exemption)
        start = perf_counter_ns()
        try:
            return self._verdict(service, name, task_id, headers, task, exemption)
        finally:
            service.gate_timings.add(status.activation_id, "worker", perf_counter_ns() - start)

    def _verdict(
        self, service: Any, name: str, task_id: str, headers: Any, task: Any, exemption: bool
    ) -> Verdict | None:
        headers = headers or {}
        operation = operation_of(service, self.app, name, headers, task)
        decision = service.decide(
            operation,
            bypass_user(headers),
            continuation=bool(headers.get(CONTINUATION)),
        )
        if decision is Decision.ALLOW:
            return None
        if decision is Decision.WOULD_BLOCK:
            if VERSION not in headers:
                # Not judged by a publish gate: the rehearsal records what the worker
                # would defer and, when it was published during the rehearsal, by whom.
                service.record_blocked_attempt(
                    operation,
                    None,
                    endpoint=name,
                    channel="worker",
                    would_block=True,
                    unjudged=unjudged_publish(
                        headers, service.status, service.settings.enable_wait
                    ),
                )
            return None
        try:
            if exemption and service.is_completion_allowed(task_id):
                return None
        except REDIS_ERRORS:
            pass  # Redis down: no exemption can be read; the job stays held back
        status = service.status
        return Verdict(
            operation=operation.value,
            reason=f"{operation.value} is blocked by {status.mode.value} maintenance"
            + (f": {status.reason}" if status.reason else ""),
            activation_id=status.activation_id,
        )

    def let_through(self, task_id: str, version: int) -> None:
        """Remember that ``task_id`` was let through on receipt under status ``version``."""
        judged = self._judged
        if len(judged) >= _JUDGED_LIMIT:
            del judged[next(iter(judged))]
        judged[task_id] = version

    def judged_on_receipt(self, task_id: str) -> bool:
        """Whether ``task_id`` was let through on receipt under the status in force now.

        Only while maintenance is on: messages received while the gate was idle,
        and fail-closed judgements (maintenance off), are judged again at dispatch.
        """
        version = self._judged.pop(task_id, None)
        if version is None:
            return False
        status = self.binding.service.status
        return status.is_active and status.version == version

    def _record(self, name: str, task_id: str, verdict: Verdict, **message: Any) -> Any:
        return record_from_message(
            task_name=name,
            task_id=task_id,
            operation=verdict.operation,
            reason=verdict.reason,
            worker=self.consumer.hostname,
            activation_id=verdict.activation_id,
            broker=broker_of(self.consumer.app),
            **message,
        )

    def second_copy(self, task_id: str | None, attempt: str) -> bool:
        """Whether this requeued message is a *second publish* of a job already accepted
        (``workers.requeue.is_second_copy``)."""
        service = self.binding.try_service()
        if service is None or not task_id:
            return False
        try:
            return is_second_copy(service.redis, service.keys, task_id, attempt)
        except REDIS_ERRORS:
            return False  # cannot tell: run it (at least once beats at most once)

    def judge_receipt(
        self, name: str, headers: Any, delivery_info: Any, *, exemption: bool = True
    ) -> Receipt:
        """What receiving a message does, decided without doing it: ``DROP`` (a second
        copy of a requeued job), ``RUN`` (nothing to judge: the gate is idle, the message
        has no id or an ETA), ``ALLOWED`` (judged and let through), ``HOLD`` (blocked, on a
        queue held in the broker) or the ``Verdict`` deferring it. The strategy acts on
        it; ``signals.redis_sweep`` asks it of messages still in the broker."""
        headers = headers or {}
        attempt = headers.get(REQUEUE_ATTEMPT)
        if attempt is not None and self.second_copy(headers.get("id"), attempt):
            return DROP
        if not self.engaged():
            return RUN
        task_id = headers.get("id")
        if not task_id or headers.get("eta"):
            return RUN
        verdict = self.verdict(name, task_id, headers, exemption=exemption)
        if verdict is None:
            return ALLOWED
        if self.hold is not None and self.hold.takes(delivery_info):
            return HOLD
        return verdict

    # -- on receipt --------------------------------------------------------------
    def wrap_strategy(self, name: str, handler: Any) -> Any:
        """A strategy that defers blocked messages before Celery builds a request."""
        gate = self

        def on_message(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kw: Any):
            headers = message.headers or {}
            # The version before the verdict: a change meanwhile makes dispatch judge again.
            version = gate.binding.service.status.version if gate.engaged() else 0
            batch = gate.batch()
            # A batch reads the exemptions of all its messages at once, when it flushes.
            receipt = gate.judge_receipt(
                name, headers, message.delivery_info, exemption=not batch.batching
            )
            if receipt is DROP:
                log.warning("maintenance: dropped a second copy of requeued job %s", headers["id"])
                ack(celery_logger, gate.consumer.connection_errors)
                return None
            if receipt is HOLD:
                gate.hold.keep_message(message)  # type: ignore[union-attr]  # held: back
                return None
            if not isinstance(receipt, Verdict):
                if receipt is ALLOWED:
                    gate.let_through(headers["id"], version)
                return handler(message, body, ack, reject, callbacks, **kw)
            verdict, task_id, attempt = receipt, headers["id"], headers.get(REQUEUE_ATTEMPT)
            record = gate._record(
                name,
                task_id,
                verdict,
                headers=headers,
                payload=message.payload,
                delivery_info=message.delivery_info,
                properties=message.properties,
            )

            def start() -> None:  # exempted, or allowed by now: Celery's strategy after all
                gate.let_through(task_id, gate.binding.service.status.version)
                handler(message, body, ack, reject, callbacks, **kw)

            def rejudge() -> bool:
                # The status changed while it waited in the batch: still blocked?
                if gate.engaged() and gate.verdict(name, task_id, headers) is not None:
                    if gate.hold is not None and gate.hold.takes(message.delivery_info):
                        gate.hold.keep_message(message)
                        return False
                    return True
                start()
                return False

            batch.add(
                Held(
                    deferral=Deferral(record, attempt),
                    message=message,
                    ack=ack,
                    reject=reject,
                    version=version,
                    rejudge=rejudge,
                    start=start,
                )
            )
            if gate.sweep is not None:
                gate.sweep.after_blocked(message)
            return None

        on_message._maintenance_gated = True  # type: ignore[attr-defined]
        on_message.__wrapped__ = handler  # type: ignore[attr-defined]
        return on_message

    # -- on dispatch -------------------------------------------------------------
    def wrap_dispatch(self, controller: Any) -> None:
        """Judge each request again when a pool slot is about to run it (prefetch)."""
        if controller is None or getattr(controller, "_maintenance_gated", False):
            return
        original = controller._process_task
        sem_func = getattr(type(controller), "_process_task_sem", None)
        uses_semaphore = getattr(controller.process_task, "__func__", None) is sem_func
        hub = getattr(self.consumer, "hub", None)
        gate = self

        def process_task(req: Any) -> Any:
            if not gate.engaged() or gate.judged_on_receipt(req.id):
                return original(req)
            verdict = gate.verdict(req.type, req.id, req.request_dict, req.task)
            if verdict is None:
                return original(req)
            try:
                if gate.hold is not None and gate.hold.takes(req.delivery_info):
                    gate.hold.keep_request(req)
                else:
                    gate.defer_request(req, verdict)
            finally:
                task_ready(req)
                if uses_semaphore:
                    # Give the slot back from the loop, not from here: the semaphore
                    # hands it straight to the next waiter, which may be deferred too.
                    release = controller._quick_release
                    if hub is not None:
                        hub.call_soon(release)
                    else:
                        release()
            return None

        controller._process_task = process_task
        controller._maintenance_gated = True

    def defer_request(self, req: Any, verdict: Verdict) -> None:
        """Record and acknowledge a request that reached dispatch while blocked."""
        record = record_from_request(
            req,
            kind=KIND_DEFERRED,
            operation=verdict.operation,
            reason=verdict.reason,
            worker=self.consumer.hostname,
            activation_id=verdict.activation_id,
            broker=broker_of(self.consumer.app),
        )
        try:
            defer(
                self.binding.service,
                record,
                eventer=self.consumer.event_dispatcher,
                attempt=req.request_dict.get(REQUEUE_ATTEMPT),
            )
        except Exception:
            log.exception("maintenance: could not defer %s[%s]; requeueing it", req.type, req.id)
            req.reject(requeue=True)
            return
        req.acknowledge()


class WorkerGateStep(bootsteps.StartStopStep):
    """Consumer bootstep installing the worker-side gate (after the ``Tasks`` step)."""

    label = "Maintenance gate"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        """Wrap every task strategy and the dispatch hook; start the worker monitor."""
        binding = binding_of(c.app)
        if binding is None:
            return
        gate = WorkerGate(binding, c)
        gate.sweep = RedisSweep(gate)  # acts only on messages from kombu's Redis transport
        setattr(c, _GATE, gate)
        for name, strategy in list(c.strategies.items()):
            if not getattr(strategy, "_maintenance_gated", False):
                c.strategies[name] = gate.wrap_strategy(name, strategy)
        gate.wrap_dispatch(getattr(c, "controller", None))
        service = binding.try_service()
        if service is None:
            return  # control plane unreachable: the worker runs, ungated, and says so
        service.declare_hook("worker")
        from .lifecycle import ensure_worker_started

        ensure_worker_started(binding, c.hostname)
        gate.hold = _queue_hold(binding, c, service)

    def stop(self, c: Any) -> None:
        """Defer the messages waiting in a batch (a connection restart or a shutdown)."""
        gate: WorkerGate | None = getattr(c, _GATE, None)
        if gate is not None:
            gate.flush()

    def shutdown(self, c: Any) -> None:
        """Defer what waits in a batch; stop following the status for held queues."""
        self.stop(c)
        hold = getattr(c, _HOLD, None)
        if hold is not None:
            hold.stop()


#: The consumer attribute naming its current gate (its batch is flushed when it stops).
_GATE = "_maintenance_worker_gate"
#: The consumer attribute keeping its ``QueueHold`` across connection restarts.
_HOLD = "_maintenance_queue_hold"


def _queue_hold(binding: Binding, c: Any, service: Any) -> QueueHold | None:
    """The consumer's queue hold, applied to the status in force (None when off)."""
    if not service.settings.hold_queues:
        return None
    hold: QueueHold | None = getattr(c, _HOLD, None)
    if hold is None:
        hold = QueueHold(binding, c)
        setattr(c, _HOLD, hold)
        return hold.start()
    hold.reattach()
    return hold
