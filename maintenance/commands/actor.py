"""Who asks for a command, and whether they may: one rule for every entry point.

Web entry points (JSON API, admin panel) build the actor from the request's
identity. The CLI and the Python API run with the deployment's own credentials
(its database URL and Redis): whoever can run them can write the stores directly,
so they act as a trusted operator with full rights; the name they give is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..domain.modes import MaintenanceMode
from ..errors import MaintenanceError, NotAuthorized

if TYPE_CHECKING:
    from ..domain.status import MaintenanceStatus
    from ..service import EnhancedMaintenanceModeService

LOCKDOWN_REFUSAL = (
    "during a critical-only lockdown only critical administrators may change maintenance"
)


@dataclass(frozen=True)
class Actor:
    """The caller of a command: a name for the record, a channel, and their rights."""

    name: str
    channel: str  # cli | api | panel | python
    is_admin: bool = True
    is_critical_admin: bool = False

    @classmethod
    def operator(cls, name: str, channel: str = "cli") -> Actor:
        """An operator's shell or the host's own code: every right (see the module doc)."""
        return cls(name=name, channel=channel, is_admin=True, is_critical_admin=True)


def in_lockdown(status: MaintenanceStatus) -> bool:
    """True while an emergency admits critical administrators only."""
    return bool(
        status.is_active and status.mode is MaintenanceMode.EMERGENCY and status.critical_admin_only
    )


def authorize(service: EnhancedMaintenanceModeService, actor: Actor) -> MaintenanceStatus:
    """Refuse (``NotAuthorized``) an actor who may not change maintenance now.

    Administrators only; during a critical-only lockdown, critical administrators
    only. The lockdown is read from SQL (the system of record); when SQL cannot be
    read, from this process's status (so a lockdown is never lifted by an outage).
    Returns the status the decision was made on.
    """
    if not actor.is_admin:
        raise NotAuthorized("administrators only")
    try:
        status = service.state.load()
    except MaintenanceError:
        status = service.status
    if (in_lockdown(status) or in_lockdown(service.status)) and not actor.is_critical_admin:
        raise NotAuthorized(LOCKDOWN_REFUSAL)
    return status
