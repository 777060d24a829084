"""Status API under load on a real WSGI server: latency of GET /api/maintenance/status with
200 concurrent clients, and fan-out of one status change to 200 SSE subscribers.

The server is gunicorn with the gthread worker (2 processes, one per core, threads enough
to hold every stream), serving bench/support/status_app.py against Redis (REDIS_URL, else embedded).
The load generator is an asyncio client in this process, on the same two cores.

* status latency, three shapes of 200 concurrent keep-alive clients: polling once a
  second each (what browsers showing a status badge do), five times a second each, and
  back-to-back with no pause (a saturation test: there latency is queueing, 200 / throughput).
  Client-side latency is what the goal is about; the server's own time per request
  (from gunicorn's access log) is printed beside it, since on a loaded two-core machine
  the difference is time spent waiting for a CPU;
* SSE: 200 subscribers connected; maintenance is enabled (and then disabled) from this
  process; time from the call until each subscriber has the event.

Goals: p99 <= 5 ms at 200 concurrent clients, judged on the shape those clients have in
use (each polls its status once a second; pages wanting faster news use the stream);
all 200 subscribers told within 100 ms. The heavier shapes show where this two-core
machine saturates and are printed for reference. Noise, the run against itself: the p99
of two halves of the judged shape's samples (alternating slices of time), and the slowest
subscriber of the enable against that of the disable.

    .venv/bin/python bench/status_api.py [--seconds 8] [--clients 200] [--short] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from bench._common import Report, bench_redis_url, delete_keys, parser, pct, split_noise
from maintenance import Settings, build_service
from maintenance.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent

REDIS_URL = bench_redis_url()
STATUS = "/api/maintenance/status"
STREAM = "/api/maintenance/stream"


def start_server(
    port: int, env: dict[str, str], threads: int, workers: int, access_log: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gthread",
        "-w",
        str(workers),
        "--threads",
        str(threads),
        "--worker-connections",
        "1000",
        "--keep-alive",
        "10",
        "--backlog",
        "2048",
        # Streams notice a gone client only at their next heartbeat: do not wait for it.
        "--graceful-timeout",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--pythonpath",
        str(ROOT / "bench" / "support"),
        "--log-level",
        "warning",
        # Server-side time per request (microseconds), to tell it from the client's view.
        "--access-logfile",
        str(access_log),
        "--access-logformat",
        "%(U)s %(D)s",
        "status_app:create_app()",
    ]
    return subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            status, _ = await get(reader, writer, STATUS)
            writer.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("server did not start")


async def get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[int, bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = await reader.readexactly(length)
    return status, body


async def poller(
    port: int,
    start: asyncio.Event,
    ready: list[int],
    window: list[float],
    think: float,
    out: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await get(reader, writer, STATUS)  # warm-up: connection and server thread ready
        ready.append(1)
        await start.wait()
        if think:
            await asyncio.sleep(random.random() * think)  # spread the clients over the period
        while time.perf_counter() < window[0]:
            started = time.perf_counter()
            status, _ = await get(reader, writer, STATUS)
            elapsed = time.perf_counter() - started
            if status != 200:
                errors.append(status)
            out.append(elapsed)
            if think:
                await asyncio.sleep(think)
    finally:
        writer.close()


async def load(port: int, clients: int, seconds: float, think: float) -> tuple[list[float], int]:
    """Latencies of ``clients`` pollers over ``seconds``, measured once all are connected."""
    latencies: list[float] = []
    errors: list[int] = []
    start = asyncio.Event()
    ready: list[int] = []
    window = [0.0]
    tasks = [
        asyncio.create_task(poller(port, start, ready, window, think, latencies, errors))
        for _ in range(clients)
    ]
    while len(ready) < clients:
        await asyncio.sleep(0.01)
    window[0] = time.perf_counter() + seconds
    start.set()
    await asyncio.gather(*tasks)
    return latencies, len(errors)


async def subscriber(port: int, connected: list[int], arrivals: dict[int, list[float]]) -> None:
    """Hold one stream open; record when each event after the first arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {STREAM} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    first = True
    try:
        while True:
            block = (await reader.readuntil(b"\n\n")).decode()
            event_id = next(
                (int(line[4:]) for line in block.split("\n") if line.startswith("id: ")), None
            )
            if event_id is None:
                continue  # retry hint or heartbeat
            if first:
                connected.append(event_id)
                first = False
            else:
                arrivals.setdefault(event_id, []).append(time.perf_counter())
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        return
    finally:
        writer.close()


async def fan_out(port: int, clients: int, settings: Settings) -> list[tuple[str, list[float]]]:
    arrivals: dict[int, list[float]] = {}
    connected: list[int] = []
    tasks = [asyncio.create_task(subscriber(port, connected, arrivals)) for _ in range(clients)]
    deadline = time.monotonic() + 30
    while len(connected) < clients and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if len(connected) < clients:
        raise RuntimeError(f"only {len(connected)} of {clients} subscribers connected")
    operator = build_service(settings, kind="cli", register=False)
    results = []
    loop = asyncio.get_running_loop()
    try:
        for label, change in (
            ("enable", lambda: operator.enable_maintenance("bench", enabled_by="bench", wait=5)),
            ("disable", lambda: operator.disable_maintenance("bench", wait=5)),
        ):
            started = time.perf_counter()
            result = await loop.run_in_executor(None, change)
            version = result.status.version
            wait_until = time.monotonic() + 10
            while len(arrivals.get(version, [])) < clients and time.monotonic() < wait_until:
                await asyncio.sleep(0.01)
            got = arrivals.get(version, [])
            results.append((label, [(t - started) * 1000 for t in got]))
            await asyncio.sleep(0.2)
    finally:
        operator.close()
        operator.db.dispose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


def server_times(log: Path, offset: int) -> tuple[list[float], int]:
    """Server-side milliseconds of the status requests logged after ``offset``."""
    with log.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    times = [
        int(fields[1]) / 1000
        for fields in (line.split() for line in data.decode().splitlines())
        if len(fields) == 2 and fields[0] == STATUS and fields[1].isdigit()
    ]
    return times, offset + len(data)


async def run(
    args: argparse.Namespace, port: int, settings: Settings, log: Path, report: Report
) -> None:
    await wait_ready(port)
    loadavg = os.getloadavg()[0]
    print(f"(machine: {os.cpu_count()} CPUs, load average {loadavg:.2f} before the run)")
    print(
        f"GET {STATUS}: {args.clients} concurrent keep-alive clients, "
        f"{args.seconds:g} s each shape (gunicorn gthread, {args.workers} worker(s))"
    )
    offset = server_times(log, 0)[1]
    for label, think, judged in (
        ("1 request/s per client", 1.0, True),
        ("5 requests/s per client", 0.2, False),
        ("back-to-back (saturation)", 0.0, False),
    ):
        latencies, errors = await load(port, args.clients, args.seconds, think)
        await asyncio.sleep(0.5)  # let the access log catch up
        served, offset = server_times(log, offset)
        rate = len(latencies) / args.seconds
        p50, p99 = pct(latencies, 50) * 1000, pct(latencies, 99) * 1000
        goal = "(judged)" if judged else "stress, for reference (no goal)"
        print(
            f"  {label:<27} {rate:6.0f} req/s  client p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  "
            f"{goal}  errors {errors}"
        )
        if judged:
            noise = split_noise(latencies, lambda half: pct(half, 99)) * 1000
            judged_line = (p99, noise, errors)
        if served:
            print(
                f"  {'':<27} {'':>12} server p50 {pct(served, 50):6.2f} ms  "
                f"p99 {pct(served, 99):7.2f} ms"
            )
    print(f"SSE fan-out to {args.clients} subscribers (time from the enable/disable call):")
    slowest = []
    for label, ms in await fan_out(port, args.clients, settings):
        if len(ms) < args.clients:
            print(f"  {label}: only {len(ms)} of {args.clients} subscribers got the event")
            slowest.append(math.inf)
            continue
        slowest.append(max(ms))
        print(
            f"  {label:<8} all {len(ms)} told: p50 {statistics.median(ms):6.1f} ms  "
            f"p99 {pct(ms, 99):6.1f} ms  max {max(ms):6.1f} ms"
        )
    note = "" if args.clients == 200 else f"{args.clients} clients"
    p99, noise, errors = judged_line
    report.goal("status_api.p99", p99, noise, note=f"{note} errors {errors}".strip())
    report.goal("status_api.fanout", max(slowest), abs(slowest[0] - slowest[1]), note=note)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--seconds", type=float, default=8.0, help="per load shape")
    options.add_argument("--clients", type=int, default=200)
    options.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = options.parse_args()
    if args.short:
        args.seconds, args.clients = 1.0, 20
    report = Report("status_api", args)
    prefix = f"bench-api-{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp()
    settings = Settings(
        redis_url=REDIS_URL, database_url=f"sqlite:///{tmp}/bench.db", redis_prefix=prefix
    )
    schema = build_service(settings, kind="cli", register=False)  # create the schema once
    schema.close()
    schema.db.dispose()
    env = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "MAINTENANCE_DATABASE_URL": settings.database_url,
        "PYTHONPATH": str(ROOT),
    }
    port = free_port()
    log = Path(tmp) / "access.log"
    log.touch()
    proc = start_server(port, env, args.clients + 40, args.workers, log)
    try:
        asyncio.run(run(args, port, settings, log, report))
    finally:
        stop_server(proc)
        delete_keys(redis.Redis.from_url(REDIS_URL), f"{prefix}:*")
    report.finish()


if __name__ == "__main__":
    main()
