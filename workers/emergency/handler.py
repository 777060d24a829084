"""The Celery side of the emergency controller: ``CeleryFleet``, the fleet adapter that
compares the job registry with what the workers themselves report before a lift and
requeues what was cut off right after, and ``EmergencyMaintenanceHandler``, the
controller with that adapter (declaring, watching, lifting, reporting)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from maintenance import EnhancedMaintenanceModeService
from maintenance.emergency import EmergencyController, attach
from maintenance.emergency.fleet import live_workers
from maintenance.job_registry import JobRegistry, reap_dead_workers
from maintenance.redisconn import REDIS_ERRORS

from ..requeue import requeue_jobs

log = logging.getLogger("maintenance.emergency")
INSPECT_TIMEOUT = 5.0


class CeleryFleet:
    """What the emergency controller asks of a Celery fleet; ``app`` may be None (no
    broker at hand): the workers and beat then requeue, and nobody is asked."""

    def __init__(self, app: Any = None) -> None:
        self.app = app

    def check(self, service: EnhancedMaintenanceModeService) -> tuple[str, list[str]]:
        """Dead workers' entries reaped first; then, with an app, the registry against
        what every live worker reports running."""
        with contextlib.suppress(*REDIS_ERRORS):
            reap_dead_workers(service)
        if self.app is None:
            return "workers: no app", []
        return "workers", self._compare_with_workers(service)

    def _compare_with_workers(self, service: EnhancedMaintenanceModeService) -> list[str]:
        # The registry is read before and after asking, so a job that starts or ends
        # meanwhile is not mistaken for an inconsistency.
        registry = JobRegistry(service.redis, service.keys)
        live = {str(n.info.get("hostname")) for n in live_workers(service.nodes()).values()}
        before = {e.task_id: e for e in registry.running()}
        try:
            # ``limit``: done as soon as every live worker answered, not at the timeout.
            inspect = self.app.control.inspect(timeout=INSPECT_TIMEOUT, limit=len(live) or None)
            replies = inspect.active() or {}
        except Exception as exc:
            return [f"the workers could not be asked what they run: {exc}"]
        after = {e.task_id: e for e in registry.running()}
        problems = []
        for host in sorted(live - set(replies)):
            problems.append(f"worker {host} did not answer: its jobs cannot be compared")
        reported = {job["id"]: (host, job) for host, jobs in replies.items() for job in jobs}
        for task_id, (host, job) in reported.items():
            if task_id not in before and task_id not in after:
                problems.append(f"{job.get('name')}[{task_id}] runs on {host}, not in the registry")
        for task_id, entry in before.items():
            if task_id in after and entry.worker in replies and task_id not in reported:
                problems.append(
                    f"the registry has {entry.name}[{task_id}] on {entry.worker}; "
                    "the worker does not run it"
                )
        return problems

    def requeue(self, service: EnhancedMaintenanceModeService, actor: str) -> str:
        """Republish the held-back jobs now: ``done``, ``partial`` or (no app) ``pending``."""
        if self.app is None:
            return "pending"  # workers that took part requeue, or the beat check does
        if not service.state.load().recovery_pending:
            # The lift's ``maintenance_disabled`` receiver (``signals.install``) already
            # requeued everything; it leaves ``recovery_pending`` set if anything is left.
            return "done"
        report = requeue_jobs(self.app, service, actor=actor)
        if report.failed:
            log.error("emergency: %d job(s) not requeued: %s", len(report.failed), report.failed)
            return "partial"
        return "done"


class EmergencyMaintenanceHandler(EmergencyController):
    """The emergency controller with the ``CeleryFleet`` of ``app``; watches each round it
    declares and becomes ``service``'s controller (``controller_for(service)``).

    ``app`` is needed only to compare the registry with the workers and to requeue
    at once when lifting; without it the workers requeue.
    """

    def __init__(self, service: EnhancedMaintenanceModeService, app: Any = None) -> None:
        super().__init__(service, CeleryFleet(app), watch=True)
        self.app = app
        attach(service, self)
