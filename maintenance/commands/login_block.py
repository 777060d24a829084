"""Refuse or admit non-admin logins: the ``login_block`` command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .actor import Actor, authorize
from .outcome import Outcome, fencing_effect

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService


def set_login_block(
    service: EnhancedMaintenanceModeService,
    actor: Actor,
    blocked: bool,
    *,
    reason: str | None = None,
    wait: float | None = None,
) -> Outcome:
    """Non-admin logins refused (``blocked``) or admitted again, in the status (fenced)."""
    authorize(service, actor)
    result = service.update_status(
        actor.name,
        "login_blocked" if blocked else "login_allowed",
        reason=reason,
        wait=wait,
        login_blocked=blocked,
    )
    status = result.status
    return Outcome(
        action="login_block",
        committed=True,
        version=status.version,
        summary=(
            f"Non-admin logins {'refused' if blocked else 'allowed'} (version {status.version})."
        ),
        effects=(fencing_effect(result),),
        data={"login_blocked": status.login_blocked, "version": status.version},
        value=result,
    )
