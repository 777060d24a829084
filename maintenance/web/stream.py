"""Server-Sent Events of status changes: one listener on the status cache wakes every
open stream; each event's id is the status version, so ``Last-Event-ID`` resumes.

The status is state, not a log: a resuming client gets the current status once
if it changed since the version it saw, then every later change.

A stream holds a worker thread of a threaded server for its whole life, so each
process admits only a few at a time (``StreamSlots``: one budget for users, one for
administrators); a client beyond them is told to poll the status instead. Where a
stream would hold the whole process (a server that runs one request at a time, such
as gunicorn's sync workers) none is admitted (``default_stream_caps``).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..domain.status import MaintenanceStatus

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService

Render = Callable[[MaintenanceStatus], dict[str, Any]]


class StatusStreamHub:
    """Fans status changes out to every stream of one service in this process."""

    def __init__(self, service: EnhancedMaintenanceModeService) -> None:
        self.service = service
        self._cond = threading.Condition()
        self._latest: MaintenanceStatus | None = None
        service.cache.add_listener(self._on_change)

    def _on_change(self, status: MaintenanceStatus) -> None:
        with self._cond:
            self._latest = status
            self._cond.notify_all()

    def latest(self) -> MaintenanceStatus:
        """The newest status this process has applied."""
        status = self._latest
        current = self.service.status
        return status if status is not None and status.version >= current.version else current

    def wait_newer(self, version: int, timeout: float) -> MaintenanceStatus | None:
        """The status once its version differs from ``version``; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                status = self.latest()
                if status.version != version:
                    return status
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def events(
        self,
        render: Render,
        *,
        last_event_id: int | None,
        heartbeat: float,
        max_seconds: float,
        retry_ms: int,
    ) -> Iterator[str]:
        """The text/event-stream body: the current status (unless the client has it),
        then one ``status`` event per change and a comment line as heartbeat."""
        yield f"retry: {retry_ms}\n: connected\n\n"
        seen = last_event_id
        current = self.latest()
        if seen is None or current.version != seen:
            yield format_event(current, render)
            seen = current.version
        deadline = time.monotonic() + max_seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            status = self.wait_newer(seen, min(heartbeat, remaining))
            if status is None:
                yield ": heartbeat\n\n"
                continue
            yield format_event(status, render)
            seen = status.version


def cooperative_server() -> bool:
    """True when this process runs green threads (gevent or eventlet monkey-patched):
    an open stream then costs a greenlet, not an OS thread of a fixed pool."""
    gevent = sys.modules.get("gevent.monkey")
    if gevent is not None and gevent.is_module_patched("threading"):
        return True
    eventlet = sys.modules.get("eventlet.patcher")
    return bool(eventlet is not None and eventlet.is_monkey_patched("thread"))


#: Default (users, administrators) stream caps per process, by how the server runs requests.
GREEN_CAPS = (1000, 100)  # gevent/eventlet: a stream costs a greenlet
THREADED_CAPS = (2, 2)  # one thread of a pool each: keep them a quarter of the pool or less
SERIAL_CAPS = (0, 0)  # one request at a time: a stream would take the whole process


def default_stream_caps(environ: Mapping[str, Any]) -> tuple[int, int]:
    """The (users, administrators) caps for a process whose server sent ``environ``: green
    threads hold many streams; a server that says it runs one request at a time per
    process (``wsgi.multithread`` false: gunicorn sync, uWSGI without threads, a
    single-threaded development server) holds none, so every client polls."""
    if cooperative_server():
        return GREEN_CAPS
    if not environ.get("wsgi.multithread", False) or environ.get("wsgi.run_once", False):
        return SERIAL_CAPS
    return THREADED_CAPS


class StreamSlots:
    """A per-process budget of open streams: ``acquire`` never waits, it says no."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        """Streams holding a slot now."""
        return self._open

    def acquire(self) -> bool:
        """Take a slot; False when all ``limit`` are taken."""
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        """Give back a slot taken by ``acquire`` (once per successful acquire)."""
        with self._lock:
            self._open = max(0, self._open - 1)


def format_event(status: MaintenanceStatus, render: Render) -> str:
    """One SSE ``status`` event whose id is the status version."""
    data = json.dumps(render(status), separators=(",", ":"))
    return f"id: {status.version}\nevent: status\ndata: {data}\n\n"


def parse_last_event_id(raw: str | None) -> int | None:
    """The version a reconnecting client saw (``Last-Event-ID``), None when absent or junk."""
    if raw is None or not re.fullmatch(r"[0-9]{1,12}", raw):
        return None
    return int(raw)
