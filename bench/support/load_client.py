"""The load generator of the activation-under-load bench: an open-loop asyncio HTTP/1.1
client sending RATE requests a second, spread round-robin over the web instances, three
reads (``GET /feed``, allowed during maintenance) to every two caption requests
(``POST /captions/generate``, blocked), on keep-alive connections, until its stdin closes.

Open loop: each request has its due time, and its latency is counted from then, so a slow
server (or a busy client) shows up as latency instead of as fewer requests. So that the
latency is the servers' and not the generator's, the generator is kept cheap -- no
HTTP library, one coroutine per request without a timeout task of its own (one watchdog
for all), the answer's status line and ``Content-Length`` read as bytes -- and asks the
kernel for a higher scheduling priority than the servers' (``nice -10``, where allowed).
Each request is recorded -- instance, kind, due, sent and done (``time.monotonic_ns()``:
CLOCK_MONOTONIC, the same clock in every process of the host), status (0: no HTTP answer)
-- and the records are written as JSON to OUT_FILE at the end.

    python bench/support/load_client.py RATE OUT_FILE PORT [PORT ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path

#: (instance, kind, due ns, sent ns, done ns, status)
Record = tuple[int, str, int, int, int, int]
REQUESTS = {
    "read": b"GET /feed HTTP/1.1\r\nHost: bench\r\nAccept: application/json\r\n\r\n",
    "blocked": (
        b"POST /captions/generate HTTP/1.1\r\nHost: bench\r\nAccept: application/json\r\n"
        b"Content-Length: 0\r\n\r\n"
    ),
}
PATTERN = ("read", "blocked", "read", "blocked", "read")
MAX_CONNECTIONS = 64  # per instance
TIMEOUT = 30.0


class Pool:
    """Keep-alive connections to one instance, opened on demand up to a cap."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def request(self, raw: bytes) -> int:
        async with self.slots:
            if self.idle:
                reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])  # b"HTTP/1.1 200 OK"
                lower = head.lower()
                at = lower.find(b"\r\ncontent-length:")
                length = int(head[at + 17 : head.index(b"\r\n", at + 2)]) if at >= 0 else 0
                close = b"\r\nconnection: close" in lower
                if length:
                    await reader.readexactly(length)
            except BaseException:
                writer.close()
                raise
            if close:
                writer.close()
            else:
                self.idle.append((reader, writer))
            return status


async def one(pool: Pool, index: int, kind: str, due: int, out: list[Record]) -> None:
    sent = time.monotonic_ns()
    try:
        status = await pool.request(REQUESTS[kind])
    except (asyncio.CancelledError, OSError, asyncio.IncompleteReadError, ValueError):
        status = 0
    out.append((index, kind, due, sent, time.monotonic_ns(), status))


async def watchdog(pending: dict[asyncio.Task[None], int], stop: asyncio.Future[None]) -> None:
    """Cancel requests older than TIMEOUT (one timer for all: no timeout task each)."""
    while not stop.done() or pending:
        await asyncio.sleep(1.0)
        limit = time.monotonic_ns() - int(TIMEOUT * 1e9)
        for task, started in list(pending.items()):
            if started < limit:
                task.cancel()


async def run(rate: float, ports: list[int], out: list[Record]) -> None:
    pools = [Pool(port) for port in ports]
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: stop.done() or stop.set_result(None))
    interval = int(1e9 / rate)
    start = time.monotonic_ns()
    pending: dict[asyncio.Task[None], int] = {}
    guard = asyncio.create_task(watchdog(pending, stop))
    n = 0
    while not stop.done():
        due = start + n * interval
        delay = (due - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.wait([stop], timeout=delay)
            continue
        index = n % len(pools)
        task = loop.create_task(one(pools[index], index, PATTERN[n % len(PATTERN)], due, out))
        pending[task] = due
        task.add_done_callback(pending.pop)
        n += 1
    if pending:
        await asyncio.wait(list(pending), timeout=TIMEOUT)
    guard.cancel()


def raise_priority() -> None:
    """Run ahead of the servers where the kernel allows (root, or CAP_SYS_NICE)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)


def main() -> None:
    rate, out_file, ports = float(sys.argv[1]), Path(sys.argv[2]), [int(p) for p in sys.argv[3:]]
    records: list[Record] = []
    raise_priority()
    print("ready", flush=True)
    asyncio.run(run(rate, ports, records))
    out_file.write_text(json.dumps(records))


if __name__ == "__main__":
    main()
