"""``Notifier``: a service's notifications -- its endpoints, its delivery thread, its health."""

from __future__ import annotations

import logging
import time

from ..domain.status import utcnow
from ..settings import Settings
from ..store.database import Database
from . import outbox
from .delivery import Deliverer, PassReport
from .endpoints import parse_endpoints
from .health import NotifyHealth, assess
from .loop import DeliveryLoop

log = logging.getLogger("maintenance.notify")


class Notifier:
    """Registers ``MAINTENANCE_WEBHOOK_URLS`` for the service's SQL engine (so every
    announced event written through it gets its outbox rows) and delivers them."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.endpoints = parse_endpoints(settings.webhook_urls)
        outbox.register(db.engine, self.endpoints)
        self._loop: DeliveryLoop | None = None

    @property
    def configured(self) -> bool:
        """Whether any webhook URL is configured."""
        return bool(self.endpoints)

    def deliverer(self) -> Deliverer:
        """A deliverer for this process's endpoints."""
        return Deliverer(self.db, self.settings, self.endpoints)

    def start_delivery(self, name: str = "node") -> bool:
        """Run the delivery thread in this process (idempotent); False when no URL is set."""
        if not self.endpoints:
            return False
        if self._loop is None:
            self._loop = DeliveryLoop(
                self.deliverer(), self.settings.webhook_poll_interval, name=name
            )
        self._loop.start()
        return True

    def stop_delivery(self) -> None:
        """Stop the delivery thread, if this process runs one."""
        if self._loop is not None:
            self._loop.stop()

    @property
    def delivering(self) -> bool:
        """Whether this process runs the delivery thread."""
        return self._loop is not None and self._loop.running

    def deliver_now(self, *, timeout: float = 60.0) -> PassReport:
        """Deliver every row due now (the CLI): passes until none is left or ``timeout``."""
        total = PassReport()
        if not self.endpoints:
            return total
        deliverer = self.deliverer()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            report = deliverer.run_once()
            total.add(report)
            if report.claimed == 0 or report.delivered == 0:
                break
        return total

    def health(self) -> NotifyHealth:
        """Counts per endpoint and what is wrong (raises ``StoreUnavailable`` when SQL is down)."""
        return assess(
            self.endpoints,
            outbox.counts(self.db),
            signed=bool(self.settings.webhook_secret),
            now=utcnow(),
            failing_after=self.settings.webhook_failing_after,
        )
