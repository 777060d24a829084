"""Run the consistency checks once when maintenance ends, whichever process sees it first.

The process that disables maintenance gets ``events.maintenance_disabled`` and
runs the checks before ``disable_maintenance`` returns. Every other process
with checks (web nodes, workers) sees the status turn off and, after a short
grace that lets the disabling process go first, races for a Redis claim per
activation: the fleet runs them once, not once per node.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .. import events
from ..domain.status import MaintenanceStatus
from ..redisconn import REDIS_ERRORS
from ..service import EnhancedMaintenanceModeService
from .consistency import CheckRegistry, CheckReport, run_checks

log = logging.getLogger("maintenance.integrity")

#: The ``trigger`` of results logged when maintenance ended.
TRIGGER = "maintenance_ended"
#: Seconds a node that only saw the status change waits before claiming the run.
CLAIM_DELAY = 1.0
#: How long the per-activation claim lives (only needs to outlast the race).
CLAIM_TTL = 24 * 3600


class ChecksOnMaintenanceEnd:
    """Connects the checks of ``registry`` to the end of maintenance for ``service``."""

    def __init__(
        self,
        service: EnhancedMaintenanceModeService,
        checks: CheckRegistry,
        *,
        follow_status: bool = True,
        claim_delay: float = CLAIM_DELAY,
    ) -> None:
        self.service = service
        self.claim_delay = claim_delay
        self.checks = checks
        self.follow_status = follow_status
        self.last_report: CheckReport | None = None
        self._done: set[str] = set()
        self._run_lock = threading.Lock()
        self._last: MaintenanceStatus | None = None
        self._subscription: int | None = None

    def connect(self) -> ChecksOnMaintenanceEnd:
        """Start listening (idempotent)."""
        events.maintenance_disabled.connect(self._on_disabled, sender=self.service, weak=False)
        if self.follow_status and self._subscription is None:
            self._last = self.service.status
            self._subscription = self.service.subscribe_to_status_changes(self._on_status)
        return self

    def disconnect(self) -> None:
        """Stop listening."""
        events.maintenance_disabled.disconnect(self._on_disabled, sender=self.service)
        if self._subscription is not None:
            self.service.unsubscribe(self._subscription)
            self._subscription = None

    def _on_disabled(self, sender: Any, status: MaintenanceStatus | None = None, **_: Any) -> None:
        if status is not None:
            self.run_once(status.activation_id, TRIGGER)

    def _on_status(self, status: MaintenanceStatus) -> None:
        previous, self._last = self._last, status
        if previous is None or not previous.is_active or status.is_active:
            return
        # Off the cache thread, which must not wait for the app's SQL queries.
        timer = threading.Timer(self.claim_delay, self.run_once, (status.activation_id, TRIGGER))
        timer.name = "maintenance-checks"
        timer.daemon = True
        timer.start()

    def run_once(self, activation_id: str | None, trigger: str) -> CheckReport | None:
        """Run the checks for the end of ``activation_id`` unless this fleet already did."""
        if not activation_id:
            return None
        with self._run_lock:
            if activation_id in self._done:
                return None
            self._done.add(activation_id)
            if not self._claim(activation_id):
                return None
            report = run_checks(
                self.service, checks=self.checks, trigger=trigger, activation_id=activation_id
            )
            self.last_report = report
            return report

    def _claim(self, activation_id: str) -> bool:
        key = self.service.keys.checks_claimed(activation_id)
        try:
            return bool(self.service.redis.set(key, "1", nx=True, ex=CLAIM_TTL))
        except REDIS_ERRORS as exc:
            # Better checked twice than not at all.
            log.warning("check claim for %s not taken (%s); running anyway", activation_id, exc)
            return True


def run_checks_when_maintenance_ends(
    service: EnhancedMaintenanceModeService,
    checks: CheckRegistry | None = None,
    *,
    follow_status: bool = True,
) -> ChecksOnMaintenanceEnd:
    """Run ``checks`` (default: the process-wide registry) when maintenance ends."""
    from .consistency import registry

    return ChecksOnMaintenanceEnd(
        service, checks or registry, follow_status=follow_status
    ).connect()
