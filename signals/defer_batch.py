"""Deferral on receipt, in batches: blocked messages are held a moment and deferred together.

One SQL transaction per message caps a worker at a few hundred deferrals a second; a
backlog of 100,000 would take minutes. So the gate's strategy hands each blocked
message to its consumer's ``DeferBatch`` instead of deferring it at once. The batch
keeps the message unacknowledged and raises the consumer's prefetch by one for it, as
Celery's strategy does for a held ETA message (``worker/strategy.py``,
``consumer.qos.increment_eventually``), so the broker keeps delivering. It is deferred
(``workers.deferral.defer_many``: one SQL transaction, one Redis round trip for the
registry, one pipeline for the requeue attempts) when the batch holds ``LIMIT``
messages, or ``DELAY`` seconds after its first one (a timer on the consumer's event
loop), or when the consumer stops (connection lost, worker shutdown). Only then is
each message acknowledged -- or, when the SQL write failed, every message of the batch
rejected back to the broker. The prefetch the batch raised is lowered at the next
flush, or ``LINGER`` seconds later when none comes: a backlog streams on at the window
it reached, instead of growing it again from the worker's own prefetch after every
flush (each doubling a broker round trip).

Without an event loop (solo, threads, gevent, eventlet pools run Celery's sync loop:
no timer would fire while the loop waits for a message) every message is a batch of
one, deferred at once, as before.

The exemptions (``allow_operation_completion``) of a batch are read at its flush, in one
round trip, and a status change between a message's verdict and its flush gets it judged
again: a message that may run now is handed to Celery's strategy after all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery.utils.log import get_logger

from maintenance import EnhancedMaintenanceModeService
from maintenance.job_flags import JobFlags
from maintenance.redisconn import REDIS_ERRORS
from workers.deferral import Deferral, defer_many

log = logging.getLogger("maintenance.celery")
celery_logger = get_logger(__name__)

#: Messages a batch holds at most before it is deferred (2,000 deferred a RabbitMQ backlog
#: 20-30 % faster than 500: fewer flushes, and a prefetch window that grows further).
LIMIT = 2000
#: By how much each held message raises the consumer's prefetch.
GROWTH = 2
#: Seconds a batch waits for more messages after its first one.
DELAY = 0.1
#: Seconds the prefetch a flushed batch raised stays raised, unless the next flush comes
#: first: a backlog keeps streaming at the window it reached instead of starting again
#: from the worker's own prefetch after each flush (one broker round trip per doubling).
LINGER = 0.5


@dataclass
class Held:
    """One blocked message waiting in a batch."""

    deferral: Deferral
    #: The kombu message, and Celery's callbacks acknowledging or rejecting it.
    message: Any
    ack: Callable[..., Any]
    reject: Callable[..., Any]
    #: The status version it was judged under.
    version: int
    #: Judges it again under the status in force; True when it is still to be deferred
    #: (False: it was handed on -- to Celery's strategy, or back to a held queue).
    rejudge: Callable[[], bool]
    #: Hands it to Celery's strategy (``allow_operation_completion`` was called for it).
    start: Callable[[], None]
    #: The consumer's QoS its receipt raised, and by how much (0 where capped or unlimited).
    qos: Any = None
    raised: int = 0


class DeferBatch:
    """The blocked messages one consumer has received and not yet deferred."""

    def __init__(self, consumer: Any, service: EnhancedMaintenanceModeService) -> None:
        self.consumer = consumer
        self.service = service
        self.pending: list[Held] = []
        self._timer: Any = None
        #: The prefetch the last flushed batch raised, per QoS, kept open for ``LINGER``.
        self._window: dict[int, tuple[Any, int]] = {}
        self._window_timer: Any = None

    @property
    def batching(self) -> bool:
        """Whether messages wait for a batch (the consumer runs an event loop)."""
        return getattr(self.consumer, "hub", None) is not None

    def add(self, held: Held) -> None:
        """Hold ``held`` for the next flush (at once without an event loop)."""
        if not self.batching:
            self._defer([held])
            return
        self._raise_qos(held)
        self.pending.append(held)
        if len(self.pending) >= LIMIT:
            self.flush()
        elif self._timer is None:
            self._timer = self.consumer.hub.call_later(DELAY, self._on_timer)

    def flush(self) -> None:
        """Defer what is pending now (never raises: a message not deferred is rejected)."""
        self._cancel_timer()
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            version = self.service.status.version
            judged = [h for h in batch if h.version == version or _still_blocked(h)]
            self._defer(self._not_exempted(judged))
        finally:
            self._keep_window(batch)

    def _defer(self, batch: list[Held]) -> None:
        if not batch:
            return
        errors = self.consumer.connection_errors
        try:
            outcomes = defer_many(
                self.service,
                [h.deferral for h in batch],
                eventer=self.consumer.event_dispatcher,
            )
        except Exception:
            # Not recorded, so not acknowledged: back to the queue, never lost.
            log.exception(
                "maintenance: could not defer %d job(s) (%s, ...); requeueing them",
                len(batch),
                batch[0].deferral.record.original_id,
            )
            for held in batch:
                self._settle(held, errors, ack=False)
            return
        deferred: list[Held] = []
        for held, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                record = held.deferral.record
                log.error(
                    "maintenance: could not defer %s[%s]; requeueing it: %s",
                    record.task_name,
                    record.original_id,
                    outcome,
                )
                self._settle(held, errors, ack=False)
            else:
                deferred.append(held)
        rest = ack_redis_batch(deferred) if self.batching else deferred
        for held in rest:
            self._settle(held, errors, ack=True)

    def _not_exempted(self, batch: list[Held]) -> list[Held]:
        """``batch`` less the messages allowed to complete (one Redis round trip), which
        are started instead; with Redis down none is exempted, as on a single verdict."""
        if not batch:
            return batch
        ids = [h.deferral.record.original_id for h in batch]
        try:
            allowed = JobFlags(self.service.redis, self.service.keys).completion_allowed_many(ids)
        except REDIS_ERRORS:
            return batch
        kept: list[Held] = []
        for held, exempted in zip(batch, allowed, strict=True):
            if not exempted:
                kept.append(held)
                continue
            try:
                held.start()
            except Exception:
                log.exception("maintenance: could not start %s", held.deferral.record.original_id)
                self._settle(held, self.consumer.connection_errors, ack=False)
        return kept

    def _raise_qos(self, held: Held) -> None:
        """Two more unacknowledged messages may be delivered while ``held`` waits: its
        own slot, and one more in flight. With one, each prefetch update (a broker round
        trip on AMQP) lets in only as many messages as were prefetched before; with two
        the window doubles per update. The prefetch beyond the held messages is at most
        their number (``LIMIT``) plus the window the batch before kept open: at most
        ``GROWTH * LIMIT`` more, for ``LINGER`` seconds after the stream ends."""
        qos = getattr(self.consumer, "qos", None)
        if qos is None:
            return
        before = qos.value
        held.qos, held.raised = qos, max(0, qos.increment_eventually(GROWTH) - before)

    def _settle(self, held: Held, errors: Any, *, ack: bool) -> None:
        """Acknowledge ``held``, or reject it back to its queue. A broker that went away
        redelivers it (its record, if written, keeps a second one from being made).

        In a batch, through the message itself: Celery's callbacks would only schedule
        it on the event loop, and a flush run by its timer is followed by a poll that
        does not wake for them -- the broker would wait for the acknowledgements (and
        send nothing more) until the loop's next timer. A single deferral keeps Celery's
        callbacks, as before."""
        try:
            if not self.batching:
                if ack:
                    held.ack(celery_logger, errors)
                else:
                    held.reject(celery_logger, errors, True)
            elif ack:
                held.message.ack_log_error(celery_logger, errors)
            else:
                held.message.reject_log_error(celery_logger, errors, requeue=True)
        except Exception as exc:
            log.warning("maintenance: a deferred message was not settled with the broker: %s", exc)

    def _keep_window(self, batch: list[Held]) -> None:
        """Lower the prefetch the batch before ``batch`` raised, and keep ``batch``'s for
        ``LINGER`` seconds (only a batch on an event loop raised any; lowered at once
        if its timer cannot be set)."""
        self.release_window()
        window: dict[int, tuple[Any, int]] = {}
        for held in batch:
            if held.raised:
                qos, raised = window.get(id(held.qos), (held.qos, 0))
                window[id(qos)] = (qos, raised + held.raised)
        if not window:
            return
        self._window = window
        try:
            self._window_timer = self.consumer.hub.call_later(LINGER, self.release_window)
        except Exception:
            self.release_window()

    def release_window(self) -> None:
        """Lower the prefetch a flushed batch raised (the stream of blocked messages
        ended, or the consumer stops)."""
        timer, self._window_timer = self._window_timer, None
        if timer is not None:
            with contextlib.suppress(Exception):
                timer.cancel()
        window, self._window = self._window, {}
        for qos, raised in window.values():
            qos.decrement_eventually(raised)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            with contextlib.suppress(Exception):  # an entry the loop already dropped
                timer.cancel()


def _still_blocked(held: Held) -> bool:
    try:
        return held.rejudge()
    except Exception:
        log.exception("maintenance: could not judge %s again", held.deferral.record.original_id)
        return True  # as judged on receipt


def ack_redis_batch(batch: list[Held]) -> list[Held]:
    """Acknowledge the messages of ``batch`` consumed through kombu's Redis transport in
    one pipeline per channel; the others (and any whose pipeline failed) are returned, to
    be acknowledged one by one.

    Kombu acknowledges a Redis message with a pipeline of its own (``QoS.ack``: remove
    it from the unacknowledged index and hash, then forget it), a round trip and a new
    redis-py pipeline object per message -- a third of a batch's time. This does the
    same for many: the removals in one pipeline (``QoS._remove_from_indices`` takes
    one), then each message forgotten as ``QoS.ack`` does.
    """
    try:
        from kombu.transport.redis import QoS as RedisQoS
        from kombu.transport.virtual import QoS as VirtualQoS
    except ImportError:  # pragma: no cover - kombu without its Redis transport
        return batch
    groups: dict[int, tuple[Any, list[Held]]] = {}
    rest: list[Held] = []
    for held in batch:
        message = held.message
        qos = getattr(getattr(message, "channel", None), "qos", None)
        usable = isinstance(qos, RedisQoS) and hasattr(qos, "_remove_from_indices")
        if usable and not message.acknowledged:
            groups.setdefault(id(qos), (qos, []))[1].append(held)
        else:
            rest.append(held)
    for qos, held_here in groups.values():
        try:
            with qos.pipe_or_acquire() as pipe:
                for held in held_here:
                    qos._remove_from_indices(held.message.delivery_tag, pipe)
                pipe.execute()
        except Exception as exc:
            log.warning("maintenance: batch acknowledgement failed (%s); one by one", exc)
            rest.extend(held_here)
            continue
        for held in held_here:
            VirtualQoS.ack(qos, held.message.delivery_tag)
            held.message._state = "ACK"
    return rest
