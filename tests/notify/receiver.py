"""A real webhook receiver for tests: a threaded HTTP server on loopback that records every
request, can fail the first N of them, and deduplicates by idempotency key like a careful
production receiver would."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Arrival:
    """One request as it reached the receiver."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def key(self) -> str:
        return self.headers.get("idempotency-key", "")

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """``fail_first`` requests get ``fail_status``; every request waits ``delay`` seconds
    before it is answered (a receiver's own latency)."""

    def __init__(
        self,
        *,
        fail_first: int = 0,
        fail_status: int = 500,
        delay: float = 0.0,
        redirect_to: str | None = None,
    ) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay = delay
        self.redirect_to = redirect_to
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    failing = len(receiver.arrivals) < receiver.fail_first
                    status = receiver.fail_status if failing else 204
                    if receiver.redirect_to is not None:
                        status = 302
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.arrivals.append(
                        Arrival(self.path, headers, body, status, time.monotonic())
                    )
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", str(receiver.redirect_to))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def all(self) -> list[Arrival]:
        with self.lock:
            return list(self.arrivals)

    def accepted(self, path: str | None = None) -> dict[str, Arrival]:
        """Deduplicated by idempotency key: the first accepted (2xx) arrival per key."""
        unique: dict[str, Arrival] = {}
        for arrival in self.all():
            if 200 <= arrival.status < 300 and (path is None or arrival.path == path):
                unique.setdefault(arrival.key, arrival)
        return unique
