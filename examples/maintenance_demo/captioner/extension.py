"""What one captioner app holds: database, Celery app, maintenance service and checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import g
from sqlalchemy.orm import Session

from maintenance import EnhancedMaintenanceModeService
from maintenance.integrity import CheckRegistry, ChecksOnMaintenanceEnd

from .db import CaptionerDatabase

if TYPE_CHECKING:
    from celery import Celery

    from maintenance.web import MaintenanceModeMiddleware


@dataclass
class CaptionerExtension:
    """``app.extensions["captioner"]``."""

    db: CaptionerDatabase
    celery: Celery
    service: EnhancedMaintenanceModeService
    maintenance: MaintenanceModeMiddleware
    checks: CheckRegistry = field(default_factory=CheckRegistry)
    check_runner: ChecksOnMaintenanceEnd | None = None

    def session(self) -> Session:
        """The request's database session (closed, and rolled back if open, at teardown)."""
        found: Session | None = g.get("_captioner_db")
        if found is None:
            found = g._captioner_db = self.db.sessions()
        return found

    @staticmethod
    def close_session(_exc: BaseException | None = None) -> None:
        """Teardown: end the request's session."""
        found: Session | None = g.pop("_captioner_db", None)
        if found is not None:
            found.close()

    def close(self) -> None:
        """Stop listening for the end of maintenance and close the database (tests)."""
        if self.check_runner is not None:
            self.check_runner.disconnect()
        self.db.dispose()
