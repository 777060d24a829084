"""The Celery app the emergency bench's workers run: one held job that either polls
``should_abort()`` or ignores it, counting its starts and completed runs in Redis (and
saying which process runs it)."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

from workers import should_abort

PREFIX = os.environ.get("BENCH_COUNTER_PREFIX", "bench")
app = Celery("emergency_bench")
app.config_from_object("celeryconfig", force=True)
_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _client


@app.task(name="bench.hold", operation_type="caption_generation", shared=False)
def hold(label: str, cooperative: bool) -> str:
    """Wait for the release key; a cooperative job stops when told to (not completed)."""
    client = _redis()
    pipe = client.pipeline()
    pipe.incr(f"{PREFIX}:starts:{label}")
    pipe.set(f"{PREFIX}:pid:{label}", os.getpid())
    pipe.execute()
    deadline = time.monotonic() + 300
    while not client.exists(f"{PREFIX}:release") and time.monotonic() < deadline:
        if cooperative and should_abort():
            return "aborted"
        time.sleep(0.05)
    client.incr(f"{PREFIX}:runs:{label}")
    return label
