"""Taking a Redis queue's blocked backlog in bulk, instead of one delivery at a time.

On kombu's Redis transport each delivered message costs a ``BRPOP`` and a ``MULTI``
pipeline copying it into the unacknowledged index (``QoS.append``), both per message:
a worker defers a 100,000-job backlog at ~2,300/s that way. So when the gate defers a
message from a Redis queue, it also looks at what waits behind it, in windows of
``WINDOW`` messages read at once (``LRANGE`` from the consuming end):

* each is judged as its receipt would judge it (``WorkerGate.judge_receipt``, the same
  function the task strategy acts on) -- only what would be deferred is taken; what
  would run, be dropped or be held stays where it is, in order, for the consumer;
* the blocked ones are taken by one Lua script, atomically: each is removed from the
  list (``LREM``, so one taken by another worker meanwhile is simply not taken) and put
  in kombu's unacknowledged hash and index, exactly as ``QoS.append`` would -- so a worker
  that dies before it records them gives them back through kombu's own
  ``visibility_timeout`` restore, as it would any delivered message;
* their records are written in one SQL transaction (``workers.deferral.defer_many``),
  then they are removed from the unacknowledged index in one pipeline (an ack). A write
  that fails gives every one of them back to the consuming end, in order.

Order is kept because the sweep runs inside the consumer's delivery callback: kombu
sends the next ``BRPOP`` only after the callback returns, so nothing is in flight, every
message older than the window has been received, and what the batch held is recorded
(``DeferBatch.flush``) before anything taken here. The event loop is given back after
``TIME_BUDGET`` seconds; the next blocked delivery continues the sweep. A window with
nothing to take, or a failed write, rests the sweep of that queue for a while.

Only while maintenance is in force (not during a rehearsal: it would count the
would-be refusals twice), only on kombu's Redis transport with acknowledgement
emulation (its default).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kombu.utils.json import dumps, loads

from maintenance.job_flags import JobFlags
from maintenance.redisconn import REDIS_ERRORS
from workers.deferral import Deferral, defer_many
from workers.headers import REQUEUE_ATTEMPT

if TYPE_CHECKING:
    from .worker_gate import WorkerGate

log = logging.getLogger("maintenance.celery")

#: Messages read per window at most, and in the first window of a sweep.
WINDOW = 500
FIRST_WINDOW = 50
#: Bytes a window should stay under (large messages get smaller windows).
WINDOW_BYTES = 4 * 1024 * 1024
#: Seconds a sweep may hold the consumer's event loop before giving it back.
TIME_BUDGET = 0.25
#: Seconds a queue's sweep rests after a window with nothing to take / a failed write.
REST_IDLE = 1.0
REST_FAILED = 5.0

#: Takes the blocked messages (KEYS: the list, kombu's unacknowledged hash and index;
#: ARGV: the time, then tag, message, unacknowledged entry per message, oldest first).
_TAKE = """
local taken = {}
for i = 2, #ARGV, 3 do
  if redis.call('LREM', KEYS[1], -1, ARGV[i + 1]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    redis.call('ZADD', KEYS[3], ARGV[1], ARGV[i])
    taken[#taken + 1] = 1
  else
    taken[#taken + 1] = 0
  end
end
return taken
"""
#: Gives taken messages back at the consuming end, oldest last (ARGV: tag, message
#: pairs, oldest first). One kombu restored meanwhile is not pushed twice.
_GIVE_BACK = """
local back = 0
for i = #ARGV - 1, 1, -2 do
  if redis.call('HDEL', KEYS[2], ARGV[i]) == 1 then
    redis.call('ZREM', KEYS[3], ARGV[i])
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
    back = back + 1
  end
end
return back
"""


@dataclass
class Swept:
    """A message read from the list that would be deferred on receipt."""

    raw: bytes
    tag: str
    entry: bytes
    deferral: Deferral


@dataclass(frozen=True)
class _Keys:
    """A queue's list and kombu's unacknowledged hash and index, with the key prefix."""

    queue: str
    unacked: str
    index: str
    #: The queue's name, for the log.
    name: str = ""


def unacked_entry(raw: bytes, delivery_info: Any) -> bytes:
    """What kombu's ``QoS.append`` stores for a delivered message: ``[message, exchange,
    routing_key]`` as JSON, the message as it was in the list (``restore_by_tag`` reads it)."""
    info = delivery_info or {}
    exchange, routing_key = dumps(info.get("exchange")), dumps(info.get("routing_key"))
    return b"".join((b"[", raw, b",", exchange.encode(), b",", routing_key.encode(), b"]"))


def is_redis_channel(channel: Any) -> bool:
    """Whether ``channel`` is kombu's Redis transport with acknowledgement emulation."""
    try:
        from kombu.transport.redis import Channel
    except ImportError:  # pragma: no cover - kombu without its Redis transport
        return False
    return isinstance(channel, Channel) and bool(getattr(channel, "ack_emulation", False))


class RedisSweep:
    """One consumer's bulk taker of blocked messages from its Redis queues."""

    def __init__(self, gate: WorkerGate) -> None:
        self.gate = gate
        self._rest_until: dict[str, float] = {}
        self._client: Any = None
        self._pool: Any = None
        self._take: Any = None
        self._give_back: Any = None

    # -- entry ---------------------------------------------------------------------
    def after_blocked(self, message: Any) -> None:
        """``message`` (from a Redis queue) was just deferred or batched: take what
        would be deferred behind it. Never raises."""
        channel = getattr(message, "channel", None)
        if not is_redis_channel(channel):
            return
        service = self.gate.binding.service
        status = service.cache.status
        if not status.is_active or status.test_mode:
            return
        version = service.status.version  # what the strategy compares, as on receipt
        if time.monotonic() < self._rest_until.get("", 0.0):
            return
        try:
            for keys in self._keys_of(channel, message):
                if time.monotonic() >= self._rest_until.get(keys.queue, 0.0):
                    self._sweep(channel, keys, version)
        except Exception as exc:
            # Redis or SQL trouble: the consumer goes on one message at a time, and the
            # sweep rests (a failure per delivery would flood the log).
            log.warning(
                "maintenance: the bulk take of a Redis queue failed (%s); one by one for %.0f s",
                exc,
                REST_FAILED,
            )
            self._rest_until[""] = time.monotonic() + REST_FAILED

    # -- the sweep -----------------------------------------------------------------
    def _sweep(self, channel: Any, keys: _Keys, version: int) -> None:
        client = self._client_for(channel)
        deadline = time.monotonic() + TIME_BUDGET
        left = 0  # messages judged and left in place at the consuming end
        flushed = False
        taken_total = 0
        window = FIRST_WINDOW
        while time.monotonic() < deadline:
            asked = window
            raws = client.lrange(keys.queue, -(left + asked), -(left + 1))
            raws.reverse()  # oldest first
            read, window = len(raws), _next_window(raws)
            candidates = self._not_exempted(self._judge(channel, raws))
            if candidates:
                if not flushed:  # what the batch holds is older: recorded first
                    self.gate.batch().flush()
                    flushed = True
                taken = self._take_now(client, keys, candidates)
                if self.gate.binding.service.status.version != version:
                    self._give_back_now(client, keys, taken)  # judged under another status
                    break
                if not self._record(client, keys, taken):
                    self._rest(keys, REST_FAILED)
                    break
                taken_total += len(taken)
                read -= len(taken)
            left += read
            if len(raws) < asked:
                break  # the list is read to its end
        if not taken_total:
            self._rest(keys, REST_IDLE)  # nothing to take behind this one: not again soon
        if taken_total:
            log.info(
                "maintenance: took %d blocked message(s) from %s in bulk",
                taken_total,
                keys.name,
            )

    def _judge(self, channel: Any, raws: Iterable[bytes]) -> list[Swept]:
        """The messages of ``raws`` their receipt would defer, as records."""
        from .worker_gate import Verdict

        gate = self.gate
        strategies = gate.consumer.strategies
        found: list[Swept] = []
        for raw in raws:
            try:
                message = channel.Message(loads(raw), channel=channel)
                headers = message.headers or {}
                name = headers.get("task")
                if not isinstance(name, str) or name not in strategies:
                    continue  # unknown here, or protocol 1: the consumer decides
                receipt = gate.judge_receipt(name, headers, message.delivery_info, exemption=False)
                if not isinstance(receipt, Verdict):
                    continue
                record = gate._record(
                    name,
                    headers["id"],
                    receipt,
                    headers=headers,
                    payload=message.payload,
                    delivery_info=message.delivery_info,
                    properties=message.properties,
                )
            except Exception:
                continue  # undecodable here: left for the consumer, which reports it
            entry = unacked_entry(raw, message.delivery_info)
            deferral = Deferral(record, headers.get(REQUEUE_ATTEMPT))
            found.append(Swept(raw, str(message.delivery_tag), entry, deferral))
        return found

    def _not_exempted(self, candidates: list[Swept]) -> list[Swept]:
        """Those not allowed to complete (read in one round trip); with Redis down none
        is exempted, as on receipt. An exempted message stays, for the consumer to run."""
        if not candidates:
            return candidates
        service = self.gate.binding.service
        ids = [c.deferral.record.original_id for c in candidates]
        try:
            allowed = JobFlags(service.redis, service.keys).completion_allowed_many(ids)
        except REDIS_ERRORS:
            return candidates
        return [c for c, exempted in zip(candidates, allowed, strict=True) if not exempted]

    def _take_now(self, client: Any, keys: _Keys, candidates: list[Swept]) -> list[Swept]:
        args: list[Any] = [time.time()]
        for c in candidates:
            args += (c.tag, c.raw, c.entry)
        flags = self._take(keys=[keys.queue, keys.unacked, keys.index], args=args, client=client)
        return [c for c, flag in zip(candidates, flags, strict=True) if int(flag)]

    def _give_back_now(self, client: Any, keys: _Keys, swept: list[Swept]) -> None:
        if not swept:
            return
        args: list[Any] = []
        for s in swept:
            args += (s.tag, s.raw)
        self._give_back(keys=[keys.queue, keys.unacked, keys.index], args=args, client=client)

    def _record(self, client: Any, keys: _Keys, taken: list[Swept]) -> bool:
        """Record ``taken`` in SQL and acknowledge them; what could not be recorded goes
        back to the queue. False when the write failed."""
        if not taken:
            return True
        consumer = self.gate.consumer
        try:
            outcomes = defer_many(
                self.gate.binding.service,
                [s.deferral for s in taken],
                eventer=consumer.event_dispatcher,
            )
        except Exception:
            log.exception(
                "maintenance: could not defer %d job(s) (%s, ...); requeueing them",
                len(taken),
                taken[0].deferral.record.original_id,
            )
            self._give_back_now(client, keys, taken)
            return False
        pairs = list(zip(taken, outcomes, strict=True))
        done = [s for s, outcome in pairs if not isinstance(outcome, Exception)]
        failed = [(s, outcome) for s, outcome in pairs if isinstance(outcome, Exception)]
        if done:
            pipe = client.pipeline(transaction=False)
            pipe.zrem(keys.index, *[s.tag for s in done])
            pipe.hdel(keys.unacked, *[s.tag for s in done])
            pipe.execute()
        if failed:
            for s, error in failed:
                log.error(
                    "maintenance: could not defer %s; requeueing it: %s",
                    s.deferral.record.original_id,
                    error,
                )
            self._give_back_now(client, keys, [s for s, _ in failed])
        return not failed

    # -- helpers -------------------------------------------------------------------
    def _rest(self, keys: _Keys, seconds: float) -> None:
        self._rest_until[keys.queue] = time.monotonic() + seconds

    def _client_for(self, channel: Any) -> Any:
        """A plain client on the channel's own connection pool (keys prefixed here)."""
        pool = channel.pool
        if self._client is None or self._pool is not pool:
            import redis

            self._client, self._pool = redis.Redis(connection_pool=pool), pool
            self._take = self._client.register_script(_TAKE)
            self._give_back = self._client.register_script(_GIVE_BACK)
        return self._client

    def _keys_of(self, channel: Any, message: Any) -> list[_Keys]:
        """The lists ``message`` may have come from: its queues this channel consumes,
        at its priority."""
        info = message.delivery_info or {}
        exchange, routing_key = info.get("exchange") or "", info.get("routing_key") or ""
        if not exchange:
            queues = [routing_key]
        else:
            try:
                queues = channel.typeof(exchange).lookup(
                    channel.get_table(exchange), exchange, routing_key, None
                )
            except Exception:
                queues = []
        active = channel.active_queues
        prefix = channel.global_keyprefix or ""
        priority = channel._get_message_priority(message._raw, reverse=False)
        unacked, index = prefix + channel.unacked_key, prefix + channel.unacked_index_key
        return [
            _Keys(prefix + channel._q_for_pri(queue, priority), unacked, index, queue)
            for queue in dict.fromkeys(q for q in queues if q and q in active)
        ]


def _next_window(raws: list[bytes]) -> int:
    """The next window's size: ``WINDOW``, or fewer where messages are large."""
    if not raws:
        return WINDOW
    average = sum(len(r) for r in raws) / len(raws)
    return max(1, min(WINDOW, int(WINDOW_BYTES / max(average, 1.0))))
