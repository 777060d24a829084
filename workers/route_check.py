"""Whether a requeued job's message reached the queue it was meant for.

A requeue publishes the way the job first went -- to the exchange and routing key its
message was delivered with (``Route``; a custom exchange reaches the same queues again),
else to its record's queue -- without declaring anything (a declaration
would create the queue, or on Redis its binding, and the message would wait there for
a worker that never comes). Then:

* RabbitMQ (``amqp``): the publish is ``mandatory`` on a connection with publisher
  confirms (``confirm_publish``): a message no queue takes comes back (``basic.return``,
  reply code 312 NO_ROUTE) before the broker confirms it, and the publish raises;
* Redis: kombu routes through the binding sets ``_kombu.binding.<exchange>`` that
  consumers declare, and a message to a queue nothing is bound to waits in a list no
  worker reads; ``check_bound`` asks first, with the same connection.

``Unroutable`` (or the broker's own error) means nothing was requeued: the recovery
reports the job failed and releases its record for a later one.

A recovery publishes in batches. On RabbitMQ (py-amqp) a batch goes out on a channel of
its own in confirm mode (``Confirms``): every message is published ``mandatory`` without
waiting (their frames written to the socket together, ``CoalescedWrites``), and the
batch then waits once for the broker's confirms of all of them; a
message the broker returned (``basic.return`` comes before its ``basic.ack``) or
nacked is reported failed, exactly as when each publish waited for its own confirm. On
Redis the binding tables a batch routes through are read once per batch
(``tables_read_once``), by ``check_bound`` and by kombu's routing of each message alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from .routing import broker_of

#: AMQP reply code of a ``mandatory`` message no queue took (``basic.return``).
NO_ROUTE = 312

#: ``send_task`` options of a verified requeue publish.
VERIFIED_PUBLISH: dict[str, Any] = {"declare": [], "mandatory": True}
#: Seconds a batch waits for the broker's confirms of all its messages.
CONFIRM_TIMEOUT = 60.0


class Unroutable(Exception):
    """The message would reach no queue a consumer is bound to."""


def queue_name(app: Any, queue: str | None) -> str:
    """The queue a record's message goes to (its own, else the app's default)."""
    return str(queue or app.conf.task_default_queue)


@contextmanager
def confirming_connection(app: Any) -> Iterator[Any]:
    """A broker connection of ``app`` whose publishes wait for the broker's confirm
    (``confirm_publish``, RabbitMQ; other transports ignore it)."""
    with app.connection_for_write(transport_options={"confirm_publish": True}) as conn:
        yield conn


def is_redis(conn: Any) -> bool:
    """Whether ``conn`` is a Redis broker connection."""
    return str(getattr(conn, "transport_cls", "") or "").split(":")[0] in ("redis", "rediss")


@dataclass(frozen=True)
class Route:
    """Where a requeue goes: the exchange and routing key the job's message was delivered
    with (recorded by the worker that held it back), else its queue by name."""

    queue: str
    exchange: str | None = None
    routing_key: str | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any], queue: str) -> Route:
        """The route of a record with publish ``options`` and ``queue``."""
        exchange = options.get("exchange") or None
        key = options.get("routing_key")
        if exchange is None or key is None:
            return cls(queue)
        return cls(queue, str(exchange), str(key))

    def publish_options(self) -> dict[str, Any]:
        """``send_task`` options that route the message this way."""
        if self.exchange is None:
            return {}
        return {"exchange": self.exchange, "routing_key": self.routing_key}

    def describe(self) -> str:
        """For messages: the queue, or the exchange and routing key."""
        if self.exchange is None or (self.exchange, self.routing_key) == (self.queue,) * 2:
            return f"queue {self.queue!r}"
        return f"exchange {self.exchange!r} with routing key {self.routing_key!r}"


def check_bound(app: Any, conn: Any, route: Route) -> None:
    """Redis: raise ``Unroutable`` unless a consumer bound a queue to the route: the
    recorded exchange and routing key (kombu publishes there as a direct exchange), else
    ``route.queue`` to the exchange the app routes it through (or to the exchange named
    like it, Celery's own for a queue it was not told of). Other transports: nothing to
    check before publishing."""
    if not is_redis(conn):
        return
    channel = conn.default_channel
    if route.exchange is not None:
        if any(entry[0] == route.routing_key for entry in channel.get_table(route.exchange)):
            return
    else:
        queue = route.queue
        exchanges = {queue}
        with suppress(KeyError, AttributeError):
            exchanges.add(str(app.amqp.queues[queue].exchange.name or queue))
        for exchange in sorted(exchanges):
            if any(entry[-1] == queue for entry in channel.get_table(exchange)):
                return
    raise Unroutable(
        f"no consumer is bound to {route.describe()} on {broker_of(app)}: the message "
        "would wait where no worker reads; start a worker consuming it (-Q), then run "
        "`maintenance recover`"
    )


def returned(exc: BaseException, route: Route) -> Unroutable | None:
    """``Unroutable`` for a publish the broker returned as unroutable, else None."""
    if getattr(exc, "reply_code", None) != NO_ROUTE:
        return None
    return Unroutable(
        f"the broker returned the message unroutable (NO_ROUTE): nothing bound to "
        f"{route.describe()} takes it; start a worker consuming it (-Q), then run "
        "`maintenance recover`"
    )


def plain_connection(app: Any) -> Any:
    """A broker connection of ``app`` without per-publish confirms (a batch's
    ``Confirms`` collects them)."""
    return app.connection_for_write()


def batch_confirmable(conn: Any) -> bool:
    """Whether ``conn`` (a py-amqp connection) can confirm a batch at once (``Confirms``)."""
    driver = getattr(getattr(conn, "transport", None), "driver_name", "")
    return driver == "py-amqp"


class ConfirmTimeout(Exception):
    """The broker did not confirm a batch in time: which messages it took is unknown."""


@dataclass
class Confirms:
    """Publisher confirms of one py-amqp channel in confirm mode, collected per batch.

    Delivery tags count the channel's publishes from 1 (``expect`` after each). A
    ``basic.ack`` or ``basic.nack`` settles its tag (with ``multiple``, every tag up to
    it); a ``basic.return`` names a message (its ``correlation_id``, the task id) that
    no queue took, before the broker acks it.
    """

    channel: Any
    pending: dict[int, str] = field(default_factory=dict)  # delivery tag -> task id
    nacked: set[str] = field(default_factory=set)
    returned: dict[str, BaseException] = field(default_factory=dict)
    #: Why the channel was given up (its pending confirms will never come), if it was.
    broken: BaseException | None = None
    _tags: int = 0

    def __post_init__(self) -> None:
        self.channel.confirm_select()
        events = self.channel.events
        events["basic_ack"].add(self._on_ack)
        events["basic_nack"].add(self._on_nack)
        events["basic_return"].add(self._on_return)

    def expect(self, task_id: str) -> int:
        """A message of ``task_id`` was just published on the channel: its tag."""
        self._tags += 1
        self.pending[self._tags] = task_id
        return self._tags

    @property
    def last(self) -> int:
        """The tag of the channel's last publish (0: none yet)."""
        return self._tags

    def _settle(self, tag: int, multiple: bool) -> list[str]:
        if not multiple:
            found = self.pending.pop(tag, None)
            return [] if found is None else [found]
        settled = [t for t in self.pending if t <= tag]  # insertion order: ascending tags
        return [self.pending.pop(t) for t in settled]

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked.update(self._settle(delivery_tag, multiple))

    def _on_return(self, exc: BaseException, exchange: str, routing_key: str, message: Any) -> None:
        properties = getattr(message, "properties", None) or {}
        headers = properties.get("application_headers") or {}
        task_id = properties.get("correlation_id") or headers.get("id")
        if task_id is not None:
            self.returned[str(task_id)] = exc

    def wait(self, connection: Any, upto: int, timeout: float = CONFIRM_TIMEOUT) -> None:
        """Until the broker settled every publish up to tag ``upto`` (raises
        ``ConfirmTimeout``, what the connection raises, or why the channel was given up)."""
        deadline = time.monotonic() + timeout
        while self.pending and next(iter(self.pending)) <= upto:
            if self.broken is not None:
                raise ConfirmTimeout(f"the channel was given up: {self.broken}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConfirmTimeout(
                    f"the broker had not confirmed {len(self.pending)} publishes in {timeout:.0f}s"
                )
            with suppress(TimeoutError):
                connection.drain_events(timeout=min(left, 1.0))

    def take(self, task_ids: Iterable[str]) -> tuple[set[str], dict[str, BaseException]]:
        """Of ``task_ids`` (settled): those nacked, and those returned (then forgotten)."""
        nacked: set[str] = set()
        returned: dict[str, BaseException] = {}
        for task_id in task_ids:
            if task_id in self.nacked:
                self.nacked.discard(task_id)
                nacked.add(task_id)
            exc = self.returned.pop(task_id, None)
            if exc is not None:
                returned[task_id] = exc
        return nacked, returned


@contextmanager
def tables_read_once(conn: Any) -> Iterator[None]:
    """Redis: inside the block, each exchange's binding table is read from Redis once
    (``check_bound`` and kombu's routing of every message publish through it) instead
    of once per message; other transports: nothing to do."""
    if not is_redis(conn):
        yield
        return
    channel = conn.default_channel
    read = channel.get_table
    tables: dict[str, Any] = {}

    def get_table(exchange: str) -> Any:
        found = tables.get(exchange)
        if found is None:
            found = tables[exchange] = read(exchange)
        return found

    channel.get_table = get_table
    try:
        yield
    finally:
        with suppress(AttributeError):
            del channel.get_table


#: Bytes of frames ``coalesced_writes`` holds at most before writing them out.
COALESCE_BYTES = 1 << 20


class CoalescedWrites:
    """py-amqp: inside the block the frames written go to the socket together (one write
    per ``COALESCE_BYTES``, the rest at the end) instead of one write per message; what
    is still held when the block raises is never sent (the batch then failed as a
    whole). Nothing inside may wait for the broker's answer (a declaration, an RPC)
    except within ``paused``."""

    def __init__(self, conn: Any) -> None:
        self.amqp = conn.connection
        self.transport = self.amqp.transport
        self._send = self.transport._write
        self._held: list[bytes] = []
        self._size = 0
        self._properties: dict[str, Any] | None = None

    def _hold(self, data: Any) -> None:
        chunk = bytes(data)  # ``data`` is a view of a buffer the next frame reuses
        self._held.append(chunk)
        self._size += len(chunk)
        if self._size >= COALESCE_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write what is held."""
        if self._held:
            chunk = b"".join(self._held)
            self._held.clear()
            self._size = 0
            self._send(chunk)

    def __enter__(self) -> CoalescedWrites:
        self.transport._write = self._hold
        # py-amqp reads the socket before every publish when the broker may block the
        # connection (``connection.blocked``), only to run ``on_blocked`` callbacks,
        # which neither kombu nor Celery registers: a non-blocking read, three system
        # calls and an exception per message, a sixth of a requeue. Inside the block
        # what arrives is read once, with the batch's confirms (``Confirms.wait``); a
        # blocked broker stops reading the socket, which holds the write, as before.
        properties = self._properties = self.amqp.client_properties
        capabilities = properties.get("capabilities") or {}
        if capabilities.get("connection.blocked"):
            self.amqp.client_properties = {
                **properties,
                "capabilities": {**capabilities, "connection.blocked": False},
            }
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.transport._write = self._send
        if self._properties is not None:
            self.amqp.client_properties, self._properties = self._properties, None
        if exc_type is None:
            self.flush()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Write through inside (what was held first): for a publish that may wait for the
        broker (``send_task``: a result backend declaring its reply queue)."""
        self.flush()
        self.transport._write = self._send
        try:
            yield
        finally:
            self.transport._write = self._hold
