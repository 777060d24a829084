"""Holding a queue in the broker: while every task routed to a queue is blocked, the worker
stops consuming it, and its messages wait in the broker in their order, untouched.

The alternative, the worker gate's deferral (``workers.deferral``), receives each blocked
message, records it in SQL, acknowledges it and republishes it at the lift: right for a
queue that mixes blocked and allowed work (the allowed jobs must keep running), but each
held-back job costs a receipt, a SQL row and a publish. A queue whose work is all blocked
needs none of that: nothing on it could run anyway.

Which queues (``Settings.hold_queues``, ``MAINTENANCE_HOLD_QUEUES``): ``off`` (default),
``auto`` (every queue this worker consumes) or a list of names. A candidate is held while
maintenance is active (not a rehearsal) and every task registered in the worker that
routes there (``task_routes``, a task's ``queue``, else the default queue) is blocked for
a caller without bypass. A queue no registered task routes to is never held: the worker
cannot know what is on it.

How: on each status change (the status cache's listener) the worker's event loop cancels
the queue's consumer (``Consumer.cancel_task_queue``, what ``celery control
cancel_consumer`` does) and, at the lift, consumes it again (``add_task_queue``). A worker
starting while a queue is to be held cancels it before its first ``basic_consume``.
Messages the worker had already taken from a held queue (prefetched, or waiting for a
pool slot) are given back to the head of the queue, oldest last, so order holds: Redis
restores them to the end ``BRPOP`` reads, RabbitMQ requeues a rejected message at its
original position.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from celery.worker.state import task_ready

from maintenance import Decision, EnhancedMaintenanceModeService
from maintenance.domain.status import MaintenanceStatus

from .binding import Binding
from .operations import operation_of

log = logging.getLogger("maintenance.celery")
#: ``Settings.hold_queues`` meaning every queue the worker consumes.
AUTO = "*"
#: The key in a worker node's registry record listing the queues it holds.
INFO_KEY = "held_queues"


def queue_of(delivery_info: Any) -> str | None:
    """The queue a message came from, as the deferral records it (its routing key)."""
    return (delivery_info or {}).get("routing_key") or None


def task_routes(app: Any) -> dict[str, set[str]]:
    """Queue name -> the registered task names routed there (``app`` finalized)."""
    router = app.amqp.router
    out: dict[str, set[str]] = {}
    for name, task in list(app.tasks.items()):
        options = {"queue": task.queue} if getattr(task, "queue", None) else {}
        try:
            queue = router.route(options, name, (), {}, task_type=task).get("queue")
        except Exception:  # a router function that needs real arguments: unknown
            continue
        queue_name = getattr(queue, "name", queue) or app.conf.task_default_queue
        out.setdefault(str(queue_name), set()).add(name)
    return out


def queues_to_hold(
    service: EnhancedMaintenanceModeService,
    app: Any,
    candidates: Iterable[str],
    routes: dict[str, set[str]],
    status: MaintenanceStatus | None = None,
) -> frozenset[str]:
    """Those of ``candidates`` to hold under ``status`` (default: the one in force)."""
    configured = service.settings.hold_queues
    status = service.status if status is None else status
    if not configured or not status.is_active or status.test_mode:
        return frozenset()
    out = set()
    for queue in candidates:
        if AUTO not in configured and queue not in configured:
            continue
        names = routes.get(queue)
        if names and all(
            service.decide(operation_of(service, app, name, None)) is Decision.BLOCK
            for name in names
        ):
            out.add(queue)
    return frozenset(out)


def give_back(message: Any) -> None:
    """Return an unacknowledged message to the head of its queue."""
    qos = getattr(getattr(message, "channel", None), "qos", None)
    restore = getattr(qos, "restore_by_tag", None)
    if restore is None or qos is None:
        message.reject(requeue=True)  # AMQP: back at its original position
        return
    # kombu's Redis reject pushes to the tail (the end LPUSH publishes to); the head is
    # the end BRPOP reads, where a restore after a lost worker puts messages back.
    restore(message.delivery_tag, leftmost=False)
    qos.ack(message.delivery_tag)
    message._state = "REJECTED"


class QueueHold:
    """One worker consumer's held queues; all changes run in the consumer's event loop."""

    def __init__(self, binding: Binding, consumer: Any) -> None:
        self.binding = binding
        self.consumer = consumer
        self.app = consumer.app
        self.pid = os.getpid()
        #: Queues this worker consumed when it started: what may be held.
        self.candidates = sorted(q.name for q in consumer.task_consumer.queues)
        self.routes = task_routes(self.app)
        #: Queues whose consumer this worker has cancelled.
        self.held: set[str] = set()
        self._wanted: tuple[int, frozenset[str]] = (-1, frozenset())
        self._accepted: list[Any] = []  # requests taken before the hold (older)
        self._received: list[Any] = []  # messages received since (newer)
        self._scheduled = False
        self._listener: int | None = None

    @property
    def service(self) -> EnhancedMaintenanceModeService:
        """The worker's service."""
        return self.binding.service

    def wanted(self) -> frozenset[str]:
        """The queues to hold under the status in force (computed once per version)."""
        status = self.service.status
        version, queues = self._wanted
        if version != status.version:
            queues = queues_to_hold(self.service, self.app, self.candidates, self.routes, status)
            self._wanted = (status.version, queues)
        return queues

    def takes(self, delivery_info: Any) -> bool:
        """Whether a blocked message from ``delivery_info``'s queue goes back to the broker
        (its queue is held) rather than into SQL."""
        queue = queue_of(delivery_info)
        return queue is not None and queue in self.wanted()

    # -- giving messages back ----------------------------------------------------
    def keep_message(self, message: Any) -> None:
        """A message received from a queue being held: given back from the loop."""
        self._received.append(message)
        self.schedule()

    def keep_request(self, request: Any) -> None:
        """A request of a held queue about to start: given back from the loop."""
        request.acknowledged = True
        task_ready(request)
        self._accepted.append(request.message)
        self.schedule()

    def _sweep(self, queues: frozenset[str]) -> None:
        # Requests of held queues waiting for a pool slot leave the line, in order.
        controller = getattr(self.consumer, "controller", None)
        waiting = getattr(getattr(controller, "semaphore", None), "_waiting", None)
        if not waiting:
            return
        for entry in list(waiting):
            args = entry[1] if len(entry) > 1 else ()
            request = args[0] if args else None
            if request is not None and queue_of(getattr(request, "delivery_info", None)) in queues:
                waiting.remove(entry)
                request.acknowledged = True
                task_ready(request)
                self._accepted.append(request.message)

    def _flush(self) -> None:
        # The newest first: each lands at the head, so the oldest ends up in front.
        messages = self._accepted + self._received
        self._accepted, self._received = [], []
        for message in reversed(messages):
            try:
                give_back(message)
            except Exception:
                log.exception("maintenance: could not give a message back to its queue")

    # -- following the status ----------------------------------------------------
    def start(self) -> QueueHold:
        """Apply the status in force now (before the consumer's first ``basic_consume``
        when the worker starts) and follow changes."""
        self.apply()
        if self._listener is None:
            self._listener = self.service.cache.add_listener(self.on_status)
        return self

    def stop(self) -> None:
        """Stop following the status."""
        if self._listener is not None:
            self.service.cache.remove_listener(self._listener)
            self._listener = None

    def on_status(self, status: MaintenanceStatus) -> None:
        """Status listener (cache thread): apply in the consumer's event loop."""
        if os.getpid() == self.pid:
            self.schedule()

    def schedule(self) -> None:
        """Run ``apply`` in the event loop soon (once however often asked)."""
        hub = getattr(self.consumer, "hub", None)
        if self._scheduled:
            return
        self._scheduled = True
        if hub is None:
            self.apply()
        else:
            hub.call_soon(self.apply)

    def apply(self) -> None:
        """Cancel the consumers of queues to hold, consume released ones again, give back
        what the worker holds of a held queue; say which in the node registry."""
        self._scheduled = False
        wanted = self.wanted()
        consumer = self.consumer
        for queue in sorted(wanted - self.held):
            consumer.cancel_task_queue(queue)  # also before its first basic_consume
            self.held.add(queue)
            log.warning(
                "maintenance: holding queue %s in the broker (every task routed to it is "
                "blocked); the worker consumes it again when maintenance ends",
                queue,
            )
        self._sweep(wanted)
        self._flush()
        for queue in sorted(self.held - wanted):
            consumer.add_task_queue(queue)
            self.held.discard(queue)
            log.warning("maintenance: consuming queue %s again", queue)
        self.service.cache.info[INFO_KEY] = sorted(self.held)

    def reattach(self) -> None:
        """After a connection restart (a new task consumer, built from every queue when
        the worker was started without ``-Q``): held queues stay cancelled."""
        for queue in sorted(self.held):
            self.consumer.cancel_task_queue(queue)
        self.apply()
