"""Enable -> all 8 node processes applied: p50/p99 over 200+ toggles.

Printed next to the raw Redis pub/sub round trip to the same 8 processes,
measured in the same run. Goal: p99 <= 10 ms.
Run: .venv/bin/python bench/propagation.py [toggles]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import bench_settings, pct, summary, verdict
from maintenance import build_service
from maintenance.redisconn import make_client, resolve_redis_url

NODES = 8
NODE = """
import sys
from maintenance import Settings, build_service
s = build_service(Settings.from_env(), kind="bench").start()
print(s.cache.node_id, flush=True)
sys.stdin.read()
s.close()
"""
ECHO = """
import sys, redis
r = redis.Redis.from_url(sys.argv[1])
p = r.pubsub(ignore_subscribe_messages=True)
p.subscribe(sys.argv[2])
print("ready", flush=True)
for m in p.listen():
    if m["data"] == b"stop":
        break
    r.publish(sys.argv[3], m["data"])
"""


def main() -> None:
    toggles = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    settings = bench_settings(node_ttl=5.0)
    url = resolve_redis_url(settings)
    env = {
        **os.environ,
        "REDIS_URL": url,
        "MAINTENANCE_DATABASE_URL": settings.database_url,
        "MAINTENANCE_REDIS_PREFIX": settings.redis_prefix,
        "MAINTENANCE_NODE_TTL": "5",
    }
    admin = build_service(settings.replace(redis_url=url), kind="cli", register=False)

    # Baseline: raw pub/sub round trip to 8 echo processes.
    ping, pong = f"{settings.redis_prefix}:ping", f"{settings.redis_prefix}:pong"
    echoes = [
        subprocess.Popen(
            [sys.executable, "-c", ECHO, url, ping, pong],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(NODES)
    ]
    for proc in echoes:
        proc.stdout.readline()  # type: ignore[union-attr]
    client = make_client(url, blocking=True)
    sub = client.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(pong)
    raw: list[float] = []
    for i in range(toggles):
        start = time.perf_counter()
        client.publish(ping, str(i))
        got = 0
        while got < NODES:
            if sub.get_message(timeout=5) is not None:
                got += 1
        raw.append(time.perf_counter() - start)
    client.publish(ping, "stop")
    for proc in echoes:
        proc.wait(10)

    # Fenced activation to 8 node processes.
    nodes = [
        subprocess.Popen(
            [sys.executable, "-c", NODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(NODES)
    ]
    ids = {p.stdout.readline().strip() for p in nodes}  # type: ignore[union-attr]
    deadline = time.monotonic() + 20
    while not ids <= set(admin.nodes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    fenced: list[float] = []
    waits: list[float] = []
    lagging = 0
    for i in range(toggles):
        start = time.perf_counter()
        if i % 2 == 0:
            result = admin.enable_maintenance(f"toggle {i}", enabled_by="bench", wait=2)
        else:
            result = admin.disable_maintenance("bench", wait=2, requeue=False)
        fenced.append(time.perf_counter() - start)
        waits.append(result.waited_seconds)
        lagging += 0 if result.fenced and ids <= set(result.applied_nodes) else 1
    for proc in nodes:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(10)
    admin.close()
    admin.db.dispose()

    print(
        f"propagation to {NODES} processes over {toggles} toggles "
        f"(SQL: {settings.database_url.split(':')[0]}, Redis: {url})"
    )
    print(f"  raw Redis pub/sub round trip : {summary(raw)}")
    print(f"  enable -> all nodes applied  : {summary(fenced)}   (incl. SQL CAS + event log)")
    print(f"  of which waiting for acks    : {summary(waits)}")
    print(f"  ratio p99 fenced / raw       : {pct(fenced, 99) / pct(raw, 99):.2f}x")
    met = verdict(pct(fenced, 99) <= 0.010)
    print(f"  goal p99 <= 10 ms            : {met}   (toggles not fenced: {lagging})")


if __name__ == "__main__":
    main()
