"""Switch maintenance off: the ``disable`` command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .actor import Actor, authorize
from .outcome import Outcome, fencing_effect

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService


def disable(
    service: EnhancedMaintenanceModeService,
    actor: Actor,
    *,
    requeue: bool = True,
    wait: float | None = None,
    expected_version: int | None = None,
    reason: str | None = None,
) -> Outcome:
    """Commit "off", fence it; held jobs are requeued by the Celery side unless not ``requeue``."""
    authorize(service, actor)
    result = service.disable_maintenance(
        actor.name, requeue=requeue, wait=wait, expected_version=expected_version, reason=reason
    )
    held = "held jobs will be requeued" if requeue else "held jobs stay held"
    return Outcome(
        action="disable",
        committed=True,
        version=result.status.version,
        summary=f"Maintenance ended (version {result.status.version}); {held}.",
        effects=(fencing_effect(result),),
        data=result.to_dict(),
        value=result,
    )
