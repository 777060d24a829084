"""Fenced enable to 8, 32 and 64 node processes: p50/p99 next to the raw Redis pub/sub round
trip to as many processes, measured in the same run.

For each size the node processes (each a real service following the status, registered for
fencing) and as many bare echo processes (subscribe, publish back) are all running; then
raw round trips and fenced toggles alternate, one of each per step, so both see the same
machine. A toggle is ``enable_maintenance(wait=...)`` or ``disable_maintenance(wait=...)``
from this process: SQL compare-and-set and event log, publish, wait for every node's ack.

Each node also notes (CLOCK_MONOTONIC, the same clock in every process of this host) when
it applied each version, so the time of a toggle splits into: until the first node applied
it (SQL write + publish + delivery), until the last one did (the fan-out), and until the
call returned (collecting the acks). The CPU each toggle costs -- this process's thread, and
every node process (from /proc/<pid>/schedstat, less what they spend idle over as long) --
is printed beside the CPU of a raw round trip: on a machine with fewer cores than processes
the fan-out cannot finish before the cores have done the nodes' work.

Goals (bench/goals.py): p99 <= 10 ms at 8 and at 64 processes. Noise: the p99 of two halves
of the toggles (alternating blocks) against each other.

    .venv/bin/python bench/propagation.py [--nodes 8,32,64] [--toggles 200] [--short] [--check]
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    Report,
    bench_settings,
    cpu_seconds,
    delete_keys,
    parser,
    pct,
    split_noise,
    summary,
)
from maintenance import build_service
from maintenance.redisconn import make_client, resolve_redis_url

NODE = """
import json, sys, time
from maintenance import Settings, build_service
s = build_service(Settings.from_env(), kind="bench").start()
applied = {}
s.subscribe_to_status_changes(lambda st: applied.setdefault(st.version, time.monotonic_ns()))
print(s.cache.node_id, flush=True)
sys.stdin.read()
s.close()
print(json.dumps(applied), flush=True)
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


@dataclass
class Size:
    """What one fleet size measured."""

    nodes: int
    raw: list[float] = field(default_factory=list)
    fenced: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    unfenced: int = 0
    #: (version, call started, call returned) in monotonic nanoseconds
    calls: list[tuple[int, int, int]] = field(default_factory=list)
    #: CPU seconds per toggle: this process's thread, each node; per round trip, each echo
    cpu_admin: float = math.nan
    cpu_node: float = math.nan
    cpu_echo: float = math.nan


def spawn(code: str, argv: list[str], env: dict[str, str], n: int) -> list[subprocess.Popen[str]]:
    """Start ``n`` processes running ``code``; return once each printed its first line."""
    procs = []
    for _ in range(n):
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code, *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    for proc in procs:
        if not proc.stdout or not proc.stdout.readline():
            raise SystemExit("a bench process died while starting")
    return procs


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--nodes", default="8,32,64", help="fleet sizes, ascending")
    options.add_argument("--toggles", type=int, default=200, help="per fleet size")
    args = options.parse_args()
    sizes = [2, 4] if args.short else sorted(int(n) for n in args.nodes.split(","))
    toggles = 20 if args.short else args.toggles
    report = Report("propagation", args)

    settings = bench_settings(node_ttl=5.0)
    url = resolve_redis_url(settings)
    admin = build_service(settings.replace(redis_url=url), kind="cli", register=False)
    env = {
        **os.environ,
        "REDIS_URL": url,
        "MAINTENANCE_DATABASE_URL": settings.database_url,
        "MAINTENANCE_REDIS_PREFIX": settings.redis_prefix,
        "MAINTENANCE_NODE_TTL": "5",
        "MAINTENANCE_AUTO_MIGRATE": "0",  # this process created the schema
    }
    ping, pong = f"{settings.redis_prefix}:ping", f"{settings.redis_prefix}:pong"
    client = make_client(url, blocking=True)
    sub = client.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(pong)
    nodes: list[subprocess.Popen[str]] = []
    echoes: list[subprocess.Popen[str]] = []
    results: list[Size] = []
    applied: dict[int, list[int]] = {}
    try:
        for size in sizes:
            echoes += spawn(ECHO, [url, ping, pong], env, size - len(echoes))
            nodes += spawn(NODE, [], env, size - len(nodes))
            deadline = time.monotonic() + 60
            while len(admin.nodes()) < size and time.monotonic() < deadline:
                time.sleep(0.05)
            idle = cpu_seconds(nodes + echoes)
            time.sleep(1.0)  # what the processes spend idle (heartbeats, re-validation)
            idle = [
                after - before
                for before, after in zip(idle, cpu_seconds(nodes + echoes), strict=True)
            ]
            busy = cpu_seconds(nodes + echoes)
            started = time.perf_counter()
            result = measure(admin, client, sub, ping, size, toggles)
            elapsed = time.perf_counter() - started
            spent = [
                after - before - rest * elapsed
                for before, after, rest in zip(busy, cpu_seconds(nodes + echoes), idle, strict=True)
            ]
            if spent:
                result.cpu_node = sum(spent[: len(nodes)]) / len(nodes) / len(result.fenced)
                result.cpu_echo = sum(spent[len(nodes) :]) / len(echoes) / len(result.raw)
            results.append(result)
    finally:
        client.publish(ping, "stop")
        for proc in nodes:
            if proc.stdin:
                proc.stdin.close()
        for proc in nodes:
            out = proc.stdout.read() if proc.stdout else ""
            proc.wait(30)
            for version, at in json.loads(out.strip().splitlines()[-1] or "{}").items():
                applied.setdefault(int(version), []).append(int(at))
        for proc in echoes:
            proc.wait(10)
        admin.close()
        admin.db.dispose()
        delete_keys(make_client(url), f"{settings.redis_prefix}:*")

    print(
        f"fenced enable/disable to N node processes, {toggles} toggles each, raw round trips "
        f"alternating (SQL: {settings.database_url.split(':')[0]}, Redis: {url})"
    )
    for size in results:
        print(f"  {size.nodes:3d} processes")
        print(f"    raw Redis pub/sub round trip : {summary(size.raw)}")
        print(f"    fenced toggle, whole call    : {summary(size.fenced)}")
        print(f"    of which waiting for acks    : {summary(size.waits)}")
        print(
            f"    p99 fenced / raw             : {pct(size.fenced, 99) / pct(size.raw, 99):.2f}x"
            f"   (toggles not fenced: {size.unfenced})"
        )
        print(f"    where the time goes (p50/p99): {breakdown(size, applied)}")
        print(
            f"    CPU per toggle: this process {size.cpu_admin * 1e3:.2f} ms, each node "
            f"{size.cpu_node * 1e6:.0f} us (x{size.nodes} = {size.cpu_node * size.nodes * 1e3:.1f}"
            f" ms); per raw round trip each echo {size.cpu_echo * 1e6:.0f} us "
            f"(x{size.nodes} = {size.cpu_echo * size.nodes * 1e3:.1f} ms); "
            f"{os.cpu_count()} CPUs"
        )
    for key, size in (("propagation.p99_8", results[0]), ("propagation.p99_64", results[-1])):
        wanted = 8 if key.endswith("_8") else 64
        p99 = pct(size.fenced, 99) * 1000
        noise = split_noise(size.fenced, lambda half: pct(half, 99)) * 1000
        note = "" if size.nodes == wanted else f"measured at {size.nodes} processes"
        if size.unfenced:
            note = f"{note}; {size.unfenced} toggles not fenced".strip("; ")
        report.goal(key, p99, noise, note=note)
    report.finish()


def measure(admin, client, sub, ping: str, nodes: int, toggles: int) -> Size:  # type: ignore[no-untyped-def]
    """Alternate raw round trips and fenced toggles; leave maintenance off."""
    size = Size(nodes)
    live = set(admin.nodes())
    cpu_admin = 0.0
    for i in range(toggles + toggles % 2):
        start = time.perf_counter()
        client.publish(ping, str(i))
        got = 0
        while got < nodes:
            if sub.get_message(timeout=5) is not None:
                got += 1
        size.raw.append(time.perf_counter() - start)

        called, start, cpu = time.monotonic_ns(), time.perf_counter(), time.thread_time()
        if i % 2 == 0:
            result = admin.enable_maintenance(f"toggle {i}", enabled_by="bench", wait=2)
        else:
            result = admin.disable_maintenance("bench", wait=2, requeue=False)
        size.fenced.append(time.perf_counter() - start)
        cpu_admin += time.thread_time() - cpu
        size.calls.append((result.status.version, called, time.monotonic_ns()))
        size.waits.append(result.waited_seconds)
        size.unfenced += 0 if result.fenced and live <= set(result.applied_nodes) else 1
    size.cpu_admin = cpu_admin / len(size.fenced)
    return size


def breakdown(size: Size, applied: dict[int, list[int]]) -> str:
    """Call -> first node applied, first -> last node applied, last -> call returned (ms)."""
    first, spread, acks = [], [], []
    for version, called, returned in size.calls:
        times = applied.get(version, [])
        if len(times) < size.nodes:
            continue
        first.append((min(times) - called) / 1e6)
        spread.append((max(times) - min(times)) / 1e6)
        acks.append((returned - max(times)) / 1e6)
    if not first:
        return "n/a"

    def both(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}/{pct(values, 99):.2f}"

    return (
        f"to first node applied {both(first)} ms, first -> last applied {both(spread)} ms, "
        f"last applied -> returned {both(acks)} ms"
    )


if __name__ == "__main__":
    main()
