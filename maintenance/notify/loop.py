"""The delivery thread of a long-running node (web, worker main process, beat).

It runs a ``Deliverer`` pass whenever this process committed a notification and
at least every ``MAINTENANCE_WEBHOOK_POLL_INTERVAL`` (rows written elsewhere, and
retries, become due in SQL). Threads do not survive ``fork()``: a forked child
forgets its parent's thread and starts its own only when asked to.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref

from ..errors import StoreUnavailable
from . import outbox
from .delivery import Deliverer

log = logging.getLogger("maintenance.notify")

#: Delivered rows are deleted after this long (checked about once an hour).
KEEP_DELIVERED_SECONDS = 7 * 24 * 3600.0
PRUNE_EVERY_SECONDS = 3600.0

_loops: weakref.WeakSet[DeliveryLoop] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for loop in list(_loops):
        loop._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)


class DeliveryLoop:
    """A daemon thread running ``deliverer`` passes until stopped."""

    def __init__(self, deliverer: Deliverer, poll_interval: float, name: str = "node") -> None:
        self.deliverer = deliverer
        self.poll_interval = max(0.05, poll_interval)
        self.name = name
        self._forget()
        _loops.add(self)

    def _forget(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def running(self) -> bool:
        """Whether this process runs the thread now."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    def start(self) -> DeliveryLoop:
        """Start the thread (idempotent)."""
        if not self.running:
            self._forget()
            self._thread = threading.Thread(
                target=self._run, name=f"maintenance-notify-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current pass (rows it holds are left to their lease)."""
        self._stop.set()
        outbox.committed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        unavailable = False
        next_prune = time.monotonic()
        while not self._stop.is_set():
            busy = False
            try:
                report = self.deliverer.run_once()
                busy = report.claimed >= self.deliverer.batch
                if time.monotonic() >= next_prune:
                    outbox.prune(self.deliverer.db, KEEP_DELIVERED_SECONDS)
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                if unavailable:
                    log.warning("notifications: SQL is reachable again; delivering")
                unavailable = False
            except StoreUnavailable as exc:
                if not unavailable:
                    log.warning("notifications: cannot read the outbox (%s); will retry", exc)
                unavailable = True
            except Exception:  # the thread must outlive any single failure
                log.exception("notification delivery pass failed")
            if not busy and outbox.committed.wait(self.poll_interval):
                outbox.committed.clear()
