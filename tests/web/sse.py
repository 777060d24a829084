"""A minimal Server-Sent Events client over a raw socket (HTTP/1.0: no chunking), for
tests against a real server."""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit


class SSEClient:
    """Open ``url`` and read events and heartbeat comments as they arrive."""

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, timeout: float = 10
    ) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        lines = [
            f"GET {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.0",
            f"Host: {parts.netloc}",
            "Accept: text/event-stream",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        head = self._read_until(b"\r\n\r\n", timeout)
        if head is None:
            raise ConnectionError("no response headers")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {
            k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines if h)
        }
        self.comments: list[str] = []
        self.closed = False

    def _read_until(self, marker: bytes, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                self.closed = True
                return None
            self.buf += chunk
        block, self.buf = self.buf.split(marker, 1)
        return block

    def next_event(self, timeout: float = 10) -> dict[str, Any] | None:
        """The next event (``id``, ``event``, ``data`` parsed as JSON); None on timeout/EOF.
        Comment lines (heartbeats) seen on the way are kept in ``comments``."""
        deadline = time.monotonic() + timeout
        while True:
            block = self._read_until(b"\n\n", max(0.0, deadline - time.monotonic()))
            if block is None:
                return None
            event: dict[str, Any] = {}
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                elif ":" in line:
                    field, value = line.split(":", 1)
                    event[field] = value[1:] if value.startswith(" ") else value
            if "data" in event:
                event["data"] = json.loads(event["data"])
                return event

    def read_body(self, timeout: float = 10) -> Any:
        """The JSON body of a refused (non-stream) answer, read to the server's close."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._read_until(b"\0", max(0.0, deadline - time.monotonic()))
        return json.loads(self.buf)

    def close(self) -> None:
        self.sock.close()
