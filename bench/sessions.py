"""Invalidating 100k Redis server-side sessions (1 % admin).

Sessions are stored exactly as Flask-Session's RedisSessionInterface stores them
(msgpack under ``<prefix>session:<sid>``), and indexed by role as the web hook does at
login. Measured in the same run:

* baseline: what a straightforward implementation does - SCAN every session key,
  read and decode each session to learn its role, delete the non-admin ones;
* ours: ``MaintenanceSessionManager.invalidate_non_admin_sessions`` - rename the
  non-admin index away, delete the keys it names in pipelined batches, bump the epoch,
  publish it in the status (SQL compare-and-set + Redis).

Goal (DESIGN.md §10): 100k sessions, 1 % admin, invalidated in <= 1 s.

    .venv/bin/python bench/sessions.py [--sessions 100000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import msgspec
import redis

from bench._common import bench_redis_url, delete_keys, verdict
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    args = parser.parse_args()
    n = args.sessions
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
        admins = populate(client, manager.index, ours_prefix, n)
        started = time.perf_counter()
        result = manager.invalidate_non_admin_sessions("bench", wait=0)
        ours_seconds = time.perf_counter() - started
        left = count(client, f"{ours_prefix}*")

        assert naive_deleted == n - admins, naive_deleted
        assert result.deleted == n - admins, result
        assert left == admins, left
        print(f"Invalidating {n} Redis sessions ({admins} admin):")
        print(f"  baseline (scan + decode + delete): {naive_seconds * 1000:8.1f} ms")
        print(
            f"  role index (ours):                 {ours_seconds * 1000:8.1f} ms   "
            f"({naive_seconds / ours_seconds:.1f}x faster; {result.deleted} removed, "
            f"{left} admin sessions kept, epoch {result.epoch})"
        )
        ok = ours_seconds <= 1.0
        print(f"  goal <= 1000 ms: {verdict(ok)}")
    finally:
        service.close()
        service.db.dispose()
        delete_keys(client, f"{prefix}:*")


if __name__ == "__main__":
    main()
