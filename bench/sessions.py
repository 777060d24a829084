"""Invalidating 100k Redis server-side sessions (1 % admin).

Sessions are stored exactly as Flask-Session's RedisSessionInterface stores them
(msgpack under ``<prefix>session:<sid>``), and indexed by role as the web hook does at
login. Measured in the same run:

* baseline: what a straightforward implementation does - SCAN every session key,
  read and decode each session to learn its role, delete the non-admin ones;
* ours: ``MaintenanceSessionManager.invalidate_non_admin_sessions`` - rename the
  non-admin index away, delete the keys it names in pipelined batches, bump the epoch,
  publish it in the status (SQL compare-and-set + Redis).

Ours is timed twice, on two fresh sets of sessions: the two timings against each other are
the noise of this run, the margin the goal is judged with.

Goal (bench/goals.py): 100k sessions, 1 % admin, invalidated in <= 1 s.

    .venv/bin/python bench/sessions.py [--sessions 100000] [--short] [--check]
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import msgspec
import redis

from bench._common import Report, bench_redis_url, delete_keys, parser
from maintenance import Settings, build_service
from maintenance.session_index import SessionIndex
from maintenance.web import MaintenanceSessionManager

REDIS_URL = bench_redis_url()
BATCH = 5000


def populate(client: redis.Redis, index: SessionIndex | None, key_prefix: str, n: int) -> int:
    """Write ``n`` sessions (every 100th an admin); index them when ``index`` is given."""
    admins = 0
    now = time.time()
    for start in range(0, n, BATCH):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + BATCH)):
            admin = i % 100 == 0
            admins += admin
            key = f"{key_prefix}{secrets.token_urlsafe(24)}"
            data = {
                "_permanent": True,
                "username": f"user{i}",
                "role": "admin" if admin else "user",
            }
            pipe.set(key, msgspec.msgpack.encode(data), ex=3600)
            if index is not None:
                index.touch(key, f"user{i}", admin, now=now, pipe=pipe)
        pipe.execute()
    return admins


def naive_invalidate(client: redis.Redis, key_prefix: str) -> int:
    """Scan, read and decode every session, delete the non-admin ones."""
    decoder = msgspec.msgpack.Decoder()
    deleted = 0
    for batch in _chunks(client.scan_iter(f"{key_prefix}*", count=5000), BATCH):
        values = client.mget(batch)
        doomed = [
            key
            for key, raw in zip(batch, values, strict=True)
            if raw is not None and decoder.decode(raw).get("role") != "admin"
        ]
        if doomed:
            deleted += client.unlink(*doomed)
    return deleted


def _chunks(iterable, size):  # type: ignore[no-untyped-def]
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def count(client: redis.Redis, pattern: str) -> int:
    return sum(1 for _ in client.scan_iter(pattern, count=10000))


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--sessions", type=int, default=100_000)
    args = options.parse_args()
    n = 2_000 if args.short else args.sessions
    report = Report("sessions", args)
    prefix = f"bench-sess-{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp()
    settings = Settings(
        redis_url=REDIS_URL, database_url=f"sqlite:///{tmp}/bench.db", redis_prefix=prefix
    )
    service = build_service(settings, kind="cli", register=False)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        naive_prefix = f"{prefix}:naive:session:"
        populate(client, None, naive_prefix, n)
        started = time.perf_counter()
        naive_deleted = naive_invalidate(client, naive_prefix)
        naive_seconds = time.perf_counter() - started

        ours_prefix = f"{prefix}:session:"
        manager = MaintenanceSessionManager(service, store_client=client)
        rounds = []
        for _ in range(2):
            admins = populate(client, manager.index, ours_prefix, n)
            started = time.perf_counter()
            result = manager.invalidate_non_admin_sessions("bench", wait=0)
            rounds.append(time.perf_counter() - started)
            left = count(client, f"{ours_prefix}*")
            assert result.deleted == n - admins, result
            assert left == admins, left
            delete_keys(client, f"{ours_prefix}*")

        assert naive_deleted == n - admins, naive_deleted
        ours_seconds = statistics.mean(rounds)
        print(f"Invalidating {n} Redis sessions ({admins} admin):")
        print(f"  baseline (scan + decode + delete): {naive_seconds * 1000:8.1f} ms")
        print(
            f"  role index (ours):                 {ours_seconds * 1000:8.1f} ms   "
            f"(mean of {rounds[0] * 1000:.1f} and {rounds[1] * 1000:.1f} ms; "
            f"{naive_seconds / ours_seconds:.1f}x faster; {result.deleted} removed, "
            f"{left} admin sessions kept, epoch {result.epoch})"
        )
        report.goal(
            "sessions.invalidate",
            ours_seconds * 1000,
            abs(rounds[0] - rounds[1]) * 1000,
            note="" if n == 100_000 else f"{n} sessions",
        )
    finally:
        service.close()
        service.db.dispose()
        delete_keys(client, f"{prefix}:*")
    report.finish()


if __name__ == "__main__":
    main()
