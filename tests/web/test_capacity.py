"""Live updates never take the app's capacity: a real server with a small pool, in a
process of its own, under 200 browsers sitting on the 503 page (each fetched the page,
then polls the status as the page's script does) and 200 clients on the live stream
(refused beyond the per-process cap, they poll). Meanwhile the admin panel, the status
API and an allowed route are probed: every probe must answer, and its latency is printed.

The same load runs on each server of docs/deployment.md with the settings given there
(``tests/web/capacity_servers.py``): waitress with 8 threads, gunicorn sync (2 workers),
gthread (2 workers x 4 threads) and gevent (2 workers), uWSGI (2 processes x 4 threads,
or gevent).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from maintenance import EnhancedMaintenanceModeService
from tests.web.capacity_server import CONFIG
from tests.web.capacity_servers import SERVERS, ServerModel, serve

ROOT = Path(__file__).resolve().parents[2]
PAGE_CLIENTS = 200
STREAM_CLIENTS = 200
#: Longer than one stream's life (5 s) and one poll interval's maximum (4 s).
LOAD_SECONDS = 6.5
PROBE_TIMEOUT = 5.0
POLL_MIN, POLL_MAX = CONFIG["MAINTENANCE_POLL_MIN_SECONDS"], CONFIG["MAINTENANCE_POLL_MAX_SECONDS"]


@pytest.fixture(params=SERVERS)
def server_model(request: pytest.FixtureRequest) -> ServerModel:
    model: ServerModel = request.param
    return model


@pytest.fixture
def capacity_server(
    server_model: ServerModel, web_service_settings_env: dict[str, str]
) -> Iterator[int]:
    yield from serve(server_model, web_service_settings_env)


@pytest.fixture
def web_service_settings_env(
    operator: EnhancedMaintenanceModeService, tmp_path: Path
) -> dict[str, str]:
    """The environment of a web process sharing ``operator``'s Redis prefix and database."""
    s = operator.settings
    env = dict(os.environ)
    env.update(
        REDIS_URL=s.redis_url or "",
        MAINTENANCE_REDIS_PREFIX=s.redis_prefix,
        MAINTENANCE_DATABASE_URL=s.database_url,
        MAINTENANCE_SECRET_KEY="capacity-secret",
        MAINTENANCE_DATA_DIR=str(tmp_path / "state"),
        PYTHONPATH=str(ROOT),
    )
    return env


class Http:
    """A minimal keep-alive HTTP/1.1 client connection (asyncio), like a browser's: a
    request on a reused connection the server closed before answering is sent again on
    a new one, and a connection the server will close is not reused."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        reused = self.conn is not None
        try:
            return await self._exchange(method, path, headers)
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
            nothing_read = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
            if not (reused and nothing_read):
                raise
        return await self._exchange(method, path, headers)

    async def _exchange(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if self.conn is None:
            self.conn = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.conn
        head = f"{method} {path} HTTP/1.1\r\nHost: capacity\r\nContent-Length: 0\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        try:
            writer.write((head + "\r\n").encode())
            status, got = await self._head(reader)
            body = await reader.readexactly(int(got.get("content-length", "0")))
        except BaseException:
            self.close()
            raise
        self.finish(got)
        return status, got, body

    def finish(self, headers: dict[str, str]) -> None:
        """After a response: close the connection if the server said it will (as browsers
        do; gunicorn's sync worker lingers on a connection until the client closes it)."""
        if headers.get("connection", "").lower() == "close" or headers[":version"] == "HTTP/1.0":
            self.close()

    @staticmethod
    async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        raw = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {":version": raw[0].split()[0]}
        for line in raw[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(raw[0].split()[1]), headers

    def close(self) -> None:
        if self.conn is not None:
            self.conn[1].close()
            self.conn = None


class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


async def poll_status(http: Http, tally: Tally, stop: float, first_retry: float = 0.0) -> None:
    """What the 503 page's script does: poll the status with jittered backoff from the
    minimum to the maximum interval, never sooner than a ``Retry-After``."""
    delay, retry = POLL_MIN, first_retry
    while time.monotonic() < stop:
        base = max(delay, retry)
        await asyncio.sleep(base * random.uniform(0.5, 1.0) + retry / 2)
        delay = min(delay * 2, POLL_MAX)
        try:
            status, headers, body = await http.request(
                "GET", "/api/maintenance/status", {"Accept": "application/json"}
            )
        except (OSError, asyncio.IncompleteReadError, ValueError):
            tally.add("poll-error")
            retry = 0.0
            continue
        tally.add(f"poll-{status}")
        retry = float(headers.get("retry-after", "0"))
        assert status != 200 or json.loads(body)["is_active"] is True


async def page_viewer(port: int, tally: Tally, stop: float) -> None:
    """A browser on the 503 page: it asked for a blocked action, then the page polls."""
    http = Http(port)
    try:
        status, _, body = await http.request("POST", "/captions/generate", {"Accept": "text/html"})
        tally.add(f"page-{status}")
        assert status == 503 and b"EventSource" not in body
        await poll_status(http, tally, stop)
    finally:
        http.close()


async def stream_client(port: int, tally: Tally, stop: float) -> None:
    """A status consumer that prefers the stream and polls when told to."""
    while time.monotonic() < stop:
        http = Http(port)
        try:
            reader, writer = http.conn = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /api/maintenance/stream HTTP/1.1\r\nHost: capacity\r\n"
                b"Accept: text/event-stream\r\n\r\n"
            )
            status, headers = await Http._head(reader)
            tally.add(f"stream-{status}")
            if status == 200:  # hold it until the server ends it (bounded lifetime)
                while time.monotonic() < stop and await reader.readline():
                    pass
                continue
            body = json.loads(await reader.readexactly(int(headers["content-length"])))
            http.finish(headers)
            assert body["error"] == "stream_unavailable"
            assert body["status_url"] == "/api/maintenance/status"
            await poll_status(http, tally, stop, float(headers["retry-after"]))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            tally.add("stream-error")
        finally:
            http.close()


def probe_loop(port: int, cookie: str, stop: float, out: dict[str, list[float]]) -> None:
    """Admin panel, status API and an allowed route, in turn, on fresh connections."""
    targets = {
        "admin panel": ("/admin/maintenance/", {"Cookie": cookie, "Accept": "text/html"}),
        "status API": ("/api/maintenance/status", {"Accept": "application/json"}),
        "allowed route": ("/feed", {}),
    }
    while time.monotonic() < stop:
        for name, (path, headers) in targets.items():
            started = time.perf_counter()
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as response:
                    response.read()
                    code = response.status
            except OSError as exc:  # a timeout or a refused connection: the failure looked for
                out.setdefault(f"{name} failures", []).append(0.0)
                print(f"probe {name} failed: {exc!r}")
                continue
            elapsed = (time.perf_counter() - started) * 1000
            out.setdefault(name, []).append(elapsed if code == 200 else -float(code))
        time.sleep(0.1)


def login_admin(port: int) -> str:
    url = f"http://127.0.0.1:{port}/login?username=root&role=admin"
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as response:
        return str(response.headers["Set-Cookie"]).split(";", 1)[0]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_pollers_and_streams_do_not_starve_the_admin_panel_or_the_app(
    server_model: ServerModel, capacity_server: int, operator: EnhancedMaintenanceModeService
) -> None:
    port = capacity_server
    cookie = login_admin(port)
    operator.enable_maintenance(
        "capacity test",
        "30m",
        blocked_operations=["caption_generation"],
        enabled_by="ops",
        wait=5,
    )
    tally = Tally()
    probes: dict[str, list[float]] = {}

    async def load() -> None:
        stop = time.monotonic() + LOAD_SECONDS
        prober = threading.Thread(target=probe_loop, args=(port, cookie, stop, probes))
        clients = [page_viewer(port, tally, stop) for _ in range(PAGE_CLIENTS)]
        clients += [stream_client(port, tally, stop) for _ in range(STREAM_CLIENTS)]
        prober.start()
        results = await asyncio.gather(*clients, return_exceptions=True)
        await asyncio.to_thread(prober.join, PROBE_TIMEOUT * 4)
        failed = [r for r in results if isinstance(r, BaseException)]
        assert not failed, f"{len(failed)} clients failed, first: {failed[0]!r}"

    asyncio.run(load())
    print(f"\n{server_model.name} clients: {json.dumps(dict(sorted(tally.counts.items())))}")
    for name, values in sorted(probes.items()):
        ok = [v for v in values if v >= 0]
        if ok and "failures" not in name:
            print(
                f"  {name:14} {len(values):4} probes   p50 {pct(ok, 0.5):7.1f} ms   "
                f"p99 {pct(ok, 0.99):7.1f} ms   max {max(ok):7.1f} ms"
            )
    failures = {k: len(v) for k, v in probes.items() if "failures" in k}
    assert not failures, f"probes timed out or were refused: {failures}"
    for name in ("admin panel", "status API", "allowed route"):
        assert probes.get(name), f"no {name} probe completed"
        assert all(v >= 0 for v in probes[name]), f"{name} answered non-200: {probes[name]}"
    assert tally.counts.get("page-503") == PAGE_CLIENTS
    assert tally.counts.get("poll-200", 0) > PAGE_CLIENTS
    assert "stream-error" not in tally.counts and "poll-error" not in tally.counts
    held, refused = tally.counts.get("stream-200", 0), tally.counts.get("stream-503", 0)
    if server_model.streams == "capped":  # a few held per process, the rest told to poll
        assert held > 0 and refused > 0, tally.counts
    elif server_model.streams == "none":  # a stream would hold the whole process
        assert held == 0 and refused > 0, tally.counts
    else:  # a stream costs a greenlet: every client holds one
        assert held >= STREAM_CLIENTS and refused == 0, tally.counts
