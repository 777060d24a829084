"""The bulk take from a Redis queue (``signals.redis_sweep``) keeps kombu's guarantees,
against the real Redis and kombu's own Redis transport (no worker needed):

* what it takes sits in kombu's unacknowledged hash and index exactly as a delivered
  message does, so a worker that dies holding it gets it back through kombu's own
  ``visibility_timeout`` restore -- once;
* a message another consumer took first is not taken again;
* what it gives back (a failed SQL write) returns to the consuming end in queue order.

The worker-level behaviour (order, exactly once, a failed write, a stop mid-backlog) is in
``test_deferral_batches.py`` and ``bench/backlog.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.simple import SimpleQueue

from signals.redis_sweep import RedisSweep, Swept, _Keys, unacked_entry
from tests.helpers import wait_for
from workers.deferral import Deferral


@pytest.fixture
def channel(redis_url: str, prefix: str) -> Iterator[Any]:
    options = {"global_keyprefix": f"{prefix}:", "visibility_timeout": 1}
    with Connection(redis_url, transport_options=options) as conn:
        yield conn.default_channel


def _publish(channel: Any, queue: Queue, count: int, priorities: tuple[int, ...] = ()) -> None:
    """Messages ``{"seq": 0}`` ... ``{"seq": count - 1}``, at ``priorities[seq]`` if given."""
    producer = Producer(channel)
    for seq in range(count):
        producer.publish(
            {"seq": seq},
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            serializer="json",
            priority=priorities[seq] if priorities else None,
        )


def _consume_all(channel: Any, queue: Queue) -> list[int]:
    seqs: list[int] = []
    with SimpleQueue(channel, queue) as simple:
        while True:
            try:
                message = simple.get(block=True, timeout=0.5)
            except simple.Empty:
                return seqs
            seqs.append(message.payload["seq"])
            message.ack()


def _setup(
    channel: Any, prefix: str, count: int
) -> tuple[RedisSweep, Any, _Keys, Queue, list[bytes]]:
    name = f"sweep-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, "direct"), routing_key=name)
    _publish(channel, queue, count)
    sweep = RedisSweep(gate=None)  # type: ignore[arg-type]  # the Redis side only
    client = sweep._client_for(channel)
    keys = _Keys(
        f"{prefix}:{name}",
        f"{prefix}:{channel.unacked_key}",
        f"{prefix}:{channel.unacked_index_key}",
    )
    raws = client.lrange(keys.queue, 0, -1)[::-1]  # oldest first
    assert len(raws) == count
    return sweep, client, keys, queue, raws


def _swept(channel: Any, raw: bytes) -> Swept:
    message = channel.Message(json.loads(raw), channel=channel)
    deferral = Deferral(record=None)  # type: ignore[arg-type]  # nothing is written to SQL here
    return Swept(
        raw, str(message.delivery_tag), unacked_entry(raw, message.delivery_info), deferral
    )


def _unacked(client: Any, keys: _Keys) -> tuple[int, int]:
    return int(client.hlen(keys.unacked)), int(client.zcard(keys.index))


def test_taken_messages_wait_as_kombu_unacknowledged_ones_and_come_back_once_after_a_crash(
    channel: Any, prefix: str
) -> None:
    sweep, client, keys, queue, raws = _setup(channel, prefix, 10)
    taken = sweep._take_now(client, keys, [_swept(channel, raw) for raw in raws[::2]])
    assert len(taken) == 5
    assert _unacked(client, keys) == (5, 5)
    # As kombu's QoS.append stores it: [message, exchange, routing key].
    message, exchange, routing_key = json.loads(client.hget(keys.unacked, taken[0].tag))
    assert message == json.loads(raws[0]) and (exchange, routing_key) == (queue.name, queue.name)

    # The worker "dies" here. kombu's restore, once the visibility timeout (1 s) passed:
    def restored() -> bool:
        channel.qos.restore_visible(num=100, interval=1)
        return _unacked(client, keys) == (0, 0)

    wait_for(restored, timeout=15, what="kombu restored the taken messages")
    assert sorted(_consume_all(channel, queue)) == list(range(10))  # each exactly once


def test_a_message_another_consumer_took_first_is_not_taken_again(
    channel: Any, prefix: str
) -> None:
    sweep, client, keys, _queue, raws = _setup(channel, prefix, 4)
    candidates = [_swept(channel, raw) for raw in raws]
    assert client.rpop(keys.queue) == raws[0]  # another worker's BRPOP
    taken = sweep._take_now(client, keys, candidates)
    assert [t.raw for t in taken] == raws[1:]
    assert client.llen(keys.queue) == 0 and _unacked(client, keys) == (3, 3)


def test_given_back_messages_return_to_the_consuming_end_in_queue_order(
    channel: Any, prefix: str
) -> None:
    sweep, client, keys, queue, raws = _setup(channel, prefix, 8)
    taken = sweep._take_now(client, keys, [_swept(channel, raw) for raw in raws[:5]])
    assert len(taken) == 5 and client.llen(keys.queue) == 3
    sweep._give_back_now(client, keys, taken)
    assert _unacked(client, keys) == (0, 0)
    assert _consume_all(channel, queue) == list(range(8))


def test_a_message_kombu_already_restored_is_not_given_back_twice(
    channel: Any, prefix: str
) -> None:
    sweep, client, keys, queue, raws = _setup(channel, prefix, 3)
    taken = sweep._take_now(client, keys, [_swept(channel, raw) for raw in raws])
    channel.qos.restore_by_tag(taken[0].tag)  # e.g. its visibility timeout ran out
    sweep._give_back_now(client, keys, taken)
    assert sorted(_consume_all(channel, queue)) == [0, 1, 2]


def test_the_list_swept_is_the_one_a_message_came_from_prefix_and_priority_included(
    channel: Any, prefix: str
) -> None:
    name = f"sweep-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, "direct"), routing_key=name, max_priority=9)
    _publish(channel, queue, 2, priorities=(0, 5))
    sweep = RedisSweep(gate=None)  # type: ignore[arg-type]
    client = sweep._client_for(channel)
    with Consumer(channel, queues=[queue], callbacks=[], accept=["json"]):
        found = {}
        for key in client.scan_iter(f"{prefix}:{name}*"):
            raw = client.lindex(key, 0)
            message = channel.Message(json.loads(raw), channel=channel)
            (keys,) = sweep._keys_of(channel, message)
            found[message.payload["seq"]] = (keys.queue, keys.name)
    separator = channel.sep
    assert found == {
        0: (f"{prefix}:{name}", name),  # priority 0
        1: (f"{prefix}:{name}{separator}{channel.priority(5)}", name),  # priority 5
    }
    assert channel.priority(5) != 0  # really another list
