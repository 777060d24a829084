"""A worker main process's housekeeping thread: reap dead workers' jobs, notice the drain."""

from __future__ import annotations

import logging
import threading

from maintenance import EnhancedMaintenanceModeService
from maintenance.job_registry import reap_dead_workers
from maintenance.redisconn import REDIS_ERRORS

from .drain import announce_if_drained

log = logging.getLogger("maintenance.celery")


class WorkerMonitor:
    """Every ``interval`` seconds: reap registry entries of dead workers; check the drain.

    Any live worker does it, so a SIGKILLed worker's jobs leave the registry
    within a few heartbeats even when no beat runs.
    """

    def __init__(
        self, service: EnhancedMaintenanceModeService, name: str, interval: float | None = None
    ) -> None:
        self.service = service
        self.name = name
        self.interval = interval or max(1.0, service.settings.node_ttl)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WorkerMonitor:
        """Start the daemon thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="maintenance-worker-monitor", daemon=True
            )
            self._thread.start()
        # The worker main process delivers webhook notifications too (after the fork).
        self.service.notifier.start_delivery(self.name)
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def tick(self) -> None:
        """One pass (also callable directly)."""
        reaped = reap_dead_workers(self.service)
        if reaped:
            log.warning(
                "maintenance: reaped %d job(s) of dead workers: %s",
                len(reaped),
                ", ".join(f"{j.name}[{j.task_id}]@{j.worker}" for j in reaped),
            )
        announce_if_drained(self.service, actor=self.name)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except REDIS_ERRORS as exc:
                log.debug("maintenance monitor: Redis unavailable (%s)", exc)
            except Exception:  # the thread must outlive any single failure
                log.exception("maintenance monitor error")
