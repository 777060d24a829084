"""The Celery side of the emergency controller: ``CeleryFleet``, the fleet adapter that
compares the job registry with what the workers themselves report before a lift and
requeues what was cut off right after, and ``EmergencyMaintenanceHandler``, the
controller with that adapter (declaring, watching, lifting, reporting)."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from maintenance import EnhancedMaintenanceModeService
from maintenance.emergency import EmergencyController, attach
from maintenance.emergency.fleet import live_workers
from maintenance.job_registry import JobRegistry, reap_dead_workers
from maintenance.redisconn import REDIS_ERRORS

from ..requeue import requeue_jobs

log = logging.getLogger("maintenance.emergency")
INSPECT_TIMEOUT = 5.0
#: How long a job a worker reports may take to appear in the registry (or in its ended
#: set) before the lift check calls it missing: a loaded pool child runs ``task_prerun``
#: late.
SETTLE_SECONDS = 5.0
SETTLE_POLL = 0.2


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
        """The registry against ``inspect().active()``, read so that no job that starts or
        ends meanwhile is taken for an inconsistency:

        * a job a worker reports but the registry does not list is fine if the registry
          says it ended (``task_postrun`` runs in the pool child a moment before the main
          process stops reporting it) or lists it by the time the workers are asked again
          (``task_prerun`` runs a moment after the main process accepted it); only one
          still reported, unlisted and not ended after ``SETTLE_SECONDS`` is a problem;
        * a registry entry its live worker does not report is a problem only if it was
          listed before and after asking and has not ended.
        """
        registry = JobRegistry(service.redis, service.keys)
        live = {str(n.info.get("hostname")) for n in live_workers(service.nodes()).values()}
        before = {e.task_id: e for e in registry.running()}
        try:
            replies = self._active(live)
        except Exception as exc:
            return [f"the workers could not be asked what they run: {exc}"]
        after = registry.all()
        problems = [
            f"worker {host} did not answer: its jobs cannot be compared"
            for host in sorted(live - set(replies))
        ]
        reported = _by_id(replies)
        try:
            unlisted = self._settle(registry, reported, set(before) | set(after))
        except Exception as exc:
            return [f"the workers could not be asked what they run: {exc}"]
        for task_id, (host, job) in sorted(unlisted.items()):
            problems.append(f"{job.get('name')}[{task_id}] runs on {host}, not in the registry")
        missing = [
            t for t, e in before.items() if t in after and e.worker in replies and t not in reported
        ]
        gone = registry.ended(missing)
        for task_id in missing:
            if task_id not in gone:
                entry = before[task_id]
                problems.append(
                    f"the registry has {entry.name}[{task_id}] on {entry.worker}; "
                    "the worker does not run it"
                )
        return problems

    def _settle(
        self,
        registry: JobRegistry,
        reported: dict[str, tuple[str, dict[str, Any]]],
        listed: set[str],
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        """Of the jobs ``reported`` running, those neither ``listed`` nor ended, once they
        stayed so (still reported by their worker) for ``SETTLE_SECONDS``."""
        unlisted = {t: r for t, r in reported.items() if t not in listed}
        deadline = time.monotonic() + SETTLE_SECONDS
        while unlisted:
            ended = registry.ended(unlisted)
            now_listed = registry.listed(unlisted)
            unlisted = {
                t: r
                for (t, r), is_listed in zip(unlisted.items(), now_listed, strict=True)
                if t not in ended and not is_listed
            }
            if not unlisted or time.monotonic() >= deadline:
                return unlisted
            time.sleep(SETTLE_POLL)
            hosts = {host for host, _ in unlisted.values()}
            again = self._active(hosts, only=True)
            still = _by_id(again)
            # A job its worker no longer reports has ended; a worker that did not answer
            # this time keeps its jobs in question.
            unlisted = {t: r for t, r in unlisted.items() if t in still or r[0] not in again}
        return unlisted

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
        if report.refused:
            return "partial"
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
