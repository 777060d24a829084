"""Consistency checks of an enable request against what the control plane knows now:
running jobs, roles, the blocked set, scheduled windows, nodes, sessions and health.

Findings are ``warning`` (the operator must acknowledge them before saving) or ``info``.
A check that cannot read its data says so as an ``info`` finding instead of failing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from ...domain.enable_request import EnableRequest
from ...domain.modes import MaintenanceMode, OperationType
from ...domain.status import MaintenanceStatus, utcnow
from ...errors import MaintenanceError
from ...redisconn import REDIS_ERRORS
from ...store.windows import WindowStore
from .jobs import of_kinds, running_jobs
from .timefmt import human_seconds, iso_minutes

if TYPE_CHECKING:
    from ...service import EnhancedMaintenanceModeService
    from ..identity import WebIdentity

log = logging.getLogger("maintenance.web.admin")
WARNING, INFO = "warning", "info"
#: Window states that still lie ahead or are running (see ``maintenance.store.windows``).
OPEN_WINDOW_STATES = ("scheduled", "active")
#: What an unreachable data source raises (Redis, the store, SQL): a check or a
#: dashboard section reports it instead of failing.
SOURCE_ERRORS: tuple[type[BaseException], ...] = (
    *REDIS_ERRORS,
    MaintenanceError,
    SQLAlchemyError,
)


@dataclass(frozen=True)
class Finding:
    """One result of a consistency check."""

    level: str  # warning | info
    code: str
    message: str
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "level": self.level,
            "code": self.code,
            "message": self.message,
            "field": self.field,
        }


@dataclass(frozen=True)
class CheckContext:
    """What every check may look at."""

    service: EnhancedMaintenanceModeService
    request: EnableRequest
    who: WebIdentity
    current: MaintenanceStatus
    sessions: Any = None  # MaintenanceSessionManager, when the app has one
    now: datetime | None = None

    @property
    def at(self) -> datetime:
        """The time the checks are made for."""
        return self.now or utcnow()


Check = Callable[[CheckContext], list[Finding]]


def duration_vs_running_jobs(ctx: CheckContext) -> list[Finding]:
    """A duration shorter than the oldest running job of a blocked type has already run."""
    req = ctx.request
    if req.mode is MaintenanceMode.TEST:
        return []
    jobs = of_kinds(running_jobs(ctx.service), req.blocked)
    if not jobs:
        return []
    oldest = jobs[0]
    age = oldest.age(time.time())
    found = [
        Finding(
            INFO,
            "jobs_will_drain",
            f"{len(jobs)} running job(s) of a blocked type will be allowed to finish "
            f"(the oldest, {oldest.name}, has run {human_seconds(age)}).",
        )
    ]
    if req.seconds is not None and req.seconds < age:
        found.append(
            Finding(
                WARNING,
                "duration_shorter_than_jobs",
                f"The duration ({human_seconds(req.seconds)}) is shorter than the "
                f"{human_seconds(age)} the oldest running {oldest.operation} job "
                f"({oldest.name}) has already run: the drain may outlast the window.",
                "duration",
            )
        )
    return found


def critical_admin_only(ctx: CheckContext) -> list[Finding]:
    """Critical-admin-only applies to emergencies and needs someone who holds the role."""
    req = ctx.request
    if not req.critical_admin_only:
        return []
    if req.mode is not MaintenanceMode.EMERGENCY:
        return [
            Finding(
                WARNING,
                "critical_only_not_emergency",
                "Critical-admin-only has an effect in emergency mode only.",
                "critical_admin_only",
            )
        ]
    roles = ctx.service.roles
    if not getattr(roles, "critical_roles", True):
        return [
            Finding(
                WARNING,
                "no_critical_role",
                "No critical-admin role is configured: nobody will be able to do admin work "
                "through the web app (the CLI and the JSON API still work).",
                "critical_admin_only",
            )
        ]
    if not ctx.who.is_critical_admin:
        return [
            Finding(
                WARNING,
                "not_critical_admin",
                "You are not a critical admin: once critical-admin-only is in force this panel "
                "will refuse you too. Only critical admins can end it from here "
                "(the CLI and the JSON API still work).",
                "critical_admin_only",
            )
        ]
    return []


def blocked_set(ctx: CheckContext) -> list[Finding]:
    """An override that blocks nothing, or blocks reads or admin work."""
    req = ctx.request
    if req.override is None:
        return []
    chosen = set(req.blocked)
    if not chosen:
        return [
            Finding(
                WARNING,
                "nothing_blocked",
                "The custom set blocks nothing: users see the maintenance banner but every "
                "operation keeps running.",
                "blocked_operations",
            )
        ]
    if OperationType.READ_OPERATIONS in chosen and req.mode is MaintenanceMode.NORMAL:
        return [
            Finding(
                INFO,
                "reads_blocked",
                "Reads are blocked: non-admin users will not be able to browse.",
                "blocked_operations",
            )
        ]
    return []


def scheduled_windows(ctx: CheckContext) -> list[Finding]:
    """Scheduled windows that open while this maintenance would still be on."""
    start = ctx.at
    end = start + timedelta(seconds=ctx.request.seconds) if ctx.request.seconds else None
    found = []
    for row in WindowStore(ctx.service.db).list(OPEN_WINDOW_STATES):
        w_start, w_end = row.start_at, row.end_at
        if w_end <= start or (end is not None and w_start >= end):
            continue
        found.append(
            Finding(
                WARNING,
                "window_overlap",
                f"Scheduled window #{row.id} ({iso_minutes(w_start)} to {iso_minutes(w_end)}, "
                f"{row.mode}: {row.reason}) overlaps"
                + (" this open-ended maintenance" if end is None else " this maintenance")
                + ": a window that opens while maintenance is on is skipped.",
                "duration",
            )
        )
    return found


def current_state(ctx: CheckContext) -> list[Finding]:
    """Changing a running maintenance: say so, and warn about downgrades."""
    current, req = ctx.current, ctx.request
    if not current.is_active:
        return []
    found = [
        Finding(
            INFO,
            "already_active",
            f"Maintenance is already on ({current.mode.value}, by {current.enabled_by}): "
            "saving changes the running activation.",
        )
    ]
    if current.mode is MaintenanceMode.EMERGENCY and req.mode is not MaintenanceMode.EMERGENCY:
        found.append(
            Finding(
                WARNING,
                "emergency_downgrade",
                f"This downgrades the running emergency to {req.mode.value} maintenance.",
                "mode",
            )
        )
    if not current.test_mode and req.mode is MaintenanceMode.TEST:
        found.append(
            Finding(
                WARNING,
                "unblocks_everything",
                "Switching a running maintenance to test mode unblocks every operation.",
                "mode",
            )
        )
    return found


def duration_given(ctx: CheckContext) -> list[Finding]:
    """No duration: users get no expected end and no ``Retry-After``."""
    if ctx.request.seconds is not None:
        return []
    return [
        Finding(
            INFO,
            "no_duration",
            "No duration: users will not see an expected end (and no Retry-After is sent).",
            "duration",
        )
    ]


def fleet(ctx: CheckContext) -> list[Finding]:
    """Nodes that have not applied the current version, and a degraded control plane."""
    found = []
    version = ctx.current.version
    lagging = sorted(n.node_id for n in ctx.service.nodes().values() if n.applied_version < version)
    if lagging:
        found.append(
            Finding(
                WARNING,
                "lagging_nodes",
                f"{len(lagging)} node(s) have not applied status version {version}: "
                + ", ".join(lagging[:5])
                + (" ..." if len(lagging) > 5 else ""),
            )
        )
    health = ctx.service.cache.health
    if health.degraded:
        found.append(
            Finding(WARNING, "degraded", f"The control plane is degraded: {health.reason}.")
        )
    problem = ctx.service.record.problem()
    if problem:
        found.append(Finding(WARNING, "store_mismatch", f"Changes will be refused: {problem}."))
    return found


def sessions(ctx: CheckContext) -> list[Finding]:
    """How many users the activation logs out."""
    req = ctx.request
    if ctx.sessions is None or req.mode is MaintenanceMode.TEST or not req.invalidate_sessions:
        return []
    active = ctx.sessions.get_active_non_admin_sessions(sample=0)
    if not active.count:
        return []
    return [
        Finding(
            INFO,
            "sessions_logged_out",
            f"{active.count} active non-admin session(s) will be logged out.",
            "invalidate_sessions",
        )
    ]


#: Every check, in the order findings are shown.
CHECKS: tuple[Check, ...] = (
    current_state,
    critical_admin_only,
    blocked_set,
    duration_vs_running_jobs,
    scheduled_windows,
    fleet,
    sessions,
    duration_given,
)


def run_checks(ctx: CheckContext, checks: tuple[Check, ...] = CHECKS) -> list[Finding]:
    """Every finding; a check whose data is unreachable reports that instead."""
    found: list[Finding] = []
    for check in checks:
        try:
            found.extend(check(ctx))
        except SOURCE_ERRORS as exc:
            log.warning("consistency check %s could not run: %s", check.__name__, exc)
            found.append(
                Finding(INFO, "check_unavailable", f"Could not check {check.__name__}: {exc}")
            )
    return found


def warnings_of(findings: list[Finding]) -> list[Finding]:
    """The findings the operator must acknowledge."""
    return [f for f in findings if f.level == WARNING]
