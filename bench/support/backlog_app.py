"""The Celery app of the backlog bench and its integration test: two queues of its own.

* ``{BACKLOG_PREFIX}-held``: only ``backlog.caption`` (caption generation) is routed
  there -- every task on it is blocked by maintenance, so it can be held in the broker;
* ``{BACKLOG_PREFIX}-mixed``: ``backlog.caption_mixed`` (blocked) and ``backlog.report``
  (a read, allowed) -- deferral records the blocked ones in SQL.

Each job appends its sequence number to ``{BACKLOG_PREFIX}:ran:<queue>`` in Redis
(``BACKLOG_COUNTER_URL``, else ``REDIS_URL``): the list says what ran, how often, in
which order.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable

import redis
from celery import Celery

PREFIX = os.environ.get("BACKLOG_PREFIX", "backlog")
CAPTION, CAPTION_MIXED, REPORT = "backlog.caption", "backlog.caption_mixed", "backlog.report"
_client: redis.Redis | None = None


def held_queue(prefix: str = PREFIX) -> str:
    """The queue only blocked work is routed to."""
    return f"{prefix}-held"


def mixed_queue(prefix: str = PREFIX) -> str:
    """The queue blocked and allowed work share."""
    return f"{prefix}-mixed"


def ran_key(queue: str, prefix: str = PREFIX) -> str:
    """The Redis list of sequence numbers the jobs of ``queue`` ran."""
    return f"{prefix}:ran:{queue}"


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        url = os.environ.get("BACKLOG_COUNTER_URL") or os.environ["REDIS_URL"]
        _client = redis.Redis.from_url(url)
    return _client


def register(app: Celery) -> None:
    """The three tasks, routed to the two queues."""
    held, mixed = held_queue(), mixed_queue()
    app.conf.task_routes = {
        CAPTION: {"queue": held},
        CAPTION_MIXED: {"queue": mixed},
        REPORT: {"queue": mixed},
    }

    @app.task(name=CAPTION, operation_type="caption_generation", shared=False)
    def caption(seq: int, wait: str | None = None) -> int:
        client = _redis()
        if wait:  # run until the key ``wait`` exists (a test holds the pool with it)
            client.set(f"{PREFIX}:waiting:{seq}", 1)
            deadline = time.monotonic() + 120
            while not client.exists(wait) and time.monotonic() < deadline:
                time.sleep(0.01)
        client.rpush(ran_key(held), seq)
        return seq

    @app.task(name=CAPTION_MIXED, operation_type="caption_generation", shared=False)
    def caption_mixed(seq: int) -> int:
        _redis().rpush(ran_key(mixed), seq)
        return seq

    @app.task(name=REPORT, operation_type="read_operations", shared=False)
    def report(seq: int) -> int:
        _redis().rpush(ran_key(f"{mixed}:reports"), seq)
        return seq


def publish(app: Celery, name: str, queue: str, seqs: Iterable[int], **kwargs: object) -> list[str]:
    """Publish one real Celery task message per ``seq`` (``app.amqp.as_task_v2``, then
    ``send_task_message``), batched by the producer (one Redis pipeline per 1,000); no
    publish gate -- this is what queued up before the window. Returns the task ids."""
    ids: list[str] = []
    amqp = app.amqp
    declare: list[object] | None = None  # the first publish declares the queue
    with app.producer_or_acquire() as producer, producer.batch(max_size=1000):
        for seq in seqs:
            task_id = str(uuid.uuid4())
            message = amqp.as_task_v2(task_id, name, args=(seq,), kwargs=dict(kwargs))
            amqp.send_task_message(
                producer, name, message, queue=queue, routing_key=queue, declare=declare
            )
            declare = []
            ids.append(task_id)
    return ids


app = Celery("backlog_bench")
if os.environ.get("BACKLOG_WORKER"):
    app.config_from_object("celeryconfig", force=True)
    app.conf.task_ignore_result = True  # results are not what is measured
    register(app)
