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
            replies = self._active(live)
        except Exception as exc:
            return [f"the workers could not be asked what they run: {exc}"]
        after = {e.task_id: e for e in registry.running()}
        problems = []
        for host in sorted(live - set(replies)):
            problems.append(f"worker {host} did not answer: its jobs cannot be compared")
        reported = _by_id(replies)
        unlisted = {t: r for t, r in reported.items() if t not in before and t not in after}
        if unlisted:
            # A job that just ended has left the registry (``task_postrun``, in the pool
            # child) a moment before its worker's main process stops reporting it: ask
            # once more, and keep what is still reported and still not listed.
            try:
                replies_again = self._active({h for h, _ in unlisted.values()}, only=True)
            except Exception as exc:
                return [f"the workers could not be asked what they run: {exc}"]
            again, listed = _by_id(replies_again), registry.all()
            unlisted = {
                t: (host, job)
                for t, (host, job) in unlisted.items()
                if (t in again or host not in replies_again) and t not in listed
            }
        for task_id, (host, job) in unlisted.items():
            problems.append(f"{job.get('name')}[{task_id}] runs on {host}, not in the registry")
        for task_id, entry in before.items():
            if task_id in after and entry.worker in replies and task_id not in reported:
                problems.append(
                    f"the registry has {entry.name}[{task_id}] on {entry.worker}; "
                    "the worker does not run it"
                )
        return problems

    def _active(self, hosts: set[str], *, only: bool = False) -> dict[str, list[dict[str, Any]]]:
        """What the workers report running (``inspect().active()``): every worker, or with
        ``only`` just ``hosts``. Done as soon as ``hosts`` answered, not at the timeout."""
        inspect = self.app.control.inspect(
            destination=sorted(hosts) if only else None,
            timeout=INSPECT_TIMEOUT,
            limit=len(hosts) or None,
        )
        return inspect.active() or {}

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


def _by_id(replies: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``task id -> (host, job)`` of ``inspect().active()`` replies."""
    return {job["id"]: (host, job) for host, jobs in replies.items() for job in jobs}
