"""Consistency checks: a registry the app fills, run on demand or when maintenance ends.

A check is ``fn(bind) -> problems``: ``bind`` is what it was registered with (an
``Engine``, a ``sessionmaker`` -- it then gets a fresh ``Session`` -- or anything
else), or the service when registered without one. Each problem is one line
of text; no problems means the check passed. Results go to the event log as
``consistency_check`` events, one per check.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any

from sqlalchemy.orm import scoped_session, sessionmaker

from ..domain.status import utcnow
from ..errors import MaintenanceError, ValidationError
from ..service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.integrity")

EVENT_KIND = "consistency_check"
#: Entry-point group of check plugins: ``register(registry, service)`` callables.
PLUGIN_GROUP = "maintenance.checks"
#: Problems kept per check in an event (the count is always complete).
MAX_LOGGED_PROBLEMS = 50

CheckFn = Callable[[Any], Iterable[Any]]


@dataclass(frozen=True)
class Check:
    """One registered consistency check."""

    name: str
    fn: CheckFn
    bind: Any = None
    description: str = ""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of running one check."""

    name: str
    problems: tuple[str, ...] = ()
    error: str | None = None
    duration_ms: float = 0.0
    description: str = ""

    @property
    def ok(self) -> bool:
        """True when the check ran and found nothing wrong."""
        return self.error is None and not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (problems truncated to ``MAX_LOGGED_PROBLEMS``)."""
        return {
            "check": self.name,
            "ok": self.ok,
            "problem_count": len(self.problems),
            "problems": list(self.problems[:MAX_LOGGED_PROBLEMS]),
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
            "description": self.description,
        }


@dataclass(frozen=True)
class CheckReport:
    """The results of one run of the registered checks."""

    results: tuple[CheckResult, ...]
    trigger: str = "manual"
    activation_id: str | None = None
    ran_at: datetime = field(default_factory=utcnow)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that found problems or could not run."""
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "trigger": self.trigger,
            "activation_id": self.activation_id,
            "ran_at": self.ran_at.isoformat(),
            "results": [r.to_dict() for r in self.results],
        }


class CheckRegistry:
    """Named checks, run in registration order."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()
        self._plugins_loaded = False

    def register(
        self, name: str, fn: CheckFn, *, bind: Any = None, description: str | None = None
    ) -> Check:
        """Add (or replace) check ``name``; returns it."""
        if not name or not name.strip():
            raise ValidationError("a check needs a name", field="name")
        if not callable(fn):
            raise ValidationError(f"check {name!r} is not callable", field="fn")
        doc = description if description is not None else (fn.__doc__ or "").strip()
        check = Check(name.strip(), fn, bind, doc.splitlines()[0] if doc else "")
        with self._lock:
            self._checks[check.name] = check
        return check

    def names(self) -> list[str]:
        """Registered check names, in order."""
        with self._lock:
            return list(self._checks)

    def checks(self, names: Sequence[str] | None = None) -> list[Check]:
        """The checks called ``names`` (default: all); unknown names are a ``ValidationError``."""
        with self._lock:
            if names is None:
                return list(self._checks.values())
            unknown = [n for n in names if n not in self._checks]
            if unknown:
                known = ", ".join(self._checks) or "none"
                raise ValidationError(f"unknown check(s) {', '.join(unknown)} (known: {known})")
            return [self._checks[n] for n in names]

    def run(
        self, service: EnhancedMaintenanceModeService | None, names: Sequence[str] | None = None
    ) -> tuple[CheckResult, ...]:
        """Run the checks; a check that raises is a failed result, never an exception."""
        return tuple(_run_one(check, service) for check in self.checks(names))

    def load_plugins(self, service: EnhancedMaintenanceModeService) -> list[str]:
        """Let every ``maintenance.checks`` entry point register its checks (once)."""
        if self._plugins_loaded:
            return []
        self._plugins_loaded = True
        loaded = []
        for ep in entry_points(group=PLUGIN_GROUP):
            try:
                ep.load()(self, service)
                loaded.append(ep.name)
            except Exception:  # a broken plugin must not hide the other checks
                log.exception("consistency check plugin %r failed to load", ep.name)
        return loaded


#: The process-wide registry ``register_check`` fills.
registry = CheckRegistry()


def register_check(
    name: str, fn: CheckFn, *, bind: Any = None, description: str | None = None
) -> Check:
    """Register check ``name`` in the process-wide registry."""
    return registry.register(name, fn, bind=bind, description=description)


def run_checks(
    service: EnhancedMaintenanceModeService,
    *,
    checks: CheckRegistry | None = None,
    names: Sequence[str] | None = None,
    trigger: str = "manual",
    activation_id: str | None = None,
    record: bool = True,
) -> CheckReport:
    """Run the checks and (``record``) log each result as a ``consistency_check`` event."""
    results = (checks or registry).run(service, names)
    report = CheckReport(results, trigger=trigger, activation_id=activation_id)
    if record:
        for result in results:
            try:
                service.record_event(
                    EVENT_KIND,
                    actor="integrity",
                    reason=None if result.ok else _summary(result),
                    details={**result.to_dict(), "trigger": trigger},
                    activation_id=activation_id,
                )
            except MaintenanceError as exc:
                log.warning("result of check %s not logged: %s", result.name, exc)
    for result in report.failed:
        log.warning("consistency check %s failed: %s", result.name, _summary(result))
    return report


def check_results(
    service: EnhancedMaintenanceModeService, activation_id: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Logged check results (newest first), of one activation when given; for reports."""
    found = service.history(limit, activation_id=activation_id, kinds=(EVENT_KIND,))
    return [
        {**event.details, "at": event.at.isoformat(), "activation_id": event.activation_id}
        for event in found
    ]


def _run_one(check: Check, service: EnhancedMaintenanceModeService | None) -> CheckResult:
    started = time.perf_counter()
    try:
        problems = tuple(str(p) for p in _call(check, service))
        error = None
    except Exception as exc:  # a broken check is a failed check, not a crash
        problems, error = (), f"{type(exc).__name__}: {exc}"
    return CheckResult(
        check.name,
        problems=problems,
        error=error,
        duration_ms=(time.perf_counter() - started) * 1000,
        description=check.description,
    )


def _call(check: Check, service: EnhancedMaintenanceModeService | None) -> Iterable[Any]:
    bind = check.bind
    if isinstance(bind, sessionmaker | scoped_session):
        session = bind()
        try:
            return list(check.fn(session))
        finally:
            session.rollback()  # a check only reads; never commit what it touched
            session.close()
    # An Engine (or any other object) is handed over as it is.
    return list(check.fn(bind if bind is not None else service))


def _summary(result: CheckResult) -> str:
    if result.error is not None:
        return f"check could not run: {result.error}"
    first = result.problems[0]
    more = len(result.problems) - 1
    return first + (f" (and {more} more)" if more else "")
