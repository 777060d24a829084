"""Server-Sent Events of status changes: one listener on the status cache wakes every
open stream; each event's id is the status version, so ``Last-Event-ID`` resumes.

The status is state, not a log: a resuming client gets the current status once
if it changed since the version it saw, then every later change.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
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


def format_event(status: MaintenanceStatus, render: Render) -> str:
    """One SSE ``status`` event whose id is the status version."""
    data = json.dumps(render(status), separators=(",", ":"))
    return f"id: {status.version}\nevent: status\ndata: {data}\n\n"


def parse_last_event_id(raw: str | None) -> int | None:
    """The version a reconnecting client saw (``Last-Event-ID``), None when absent or junk."""
    if raw is None or not re.fullmatch(r"[0-9]{1,12}", raw):
        return None
    return int(raw)
