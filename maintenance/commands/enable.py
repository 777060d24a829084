"""Switch maintenance on (or change it while on): the ``enable`` command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..domain.enable_request import EnableRequest
from .actor import Actor, authorize
from .outcome import Outcome, fencing_effect
from .sessions import Invalidator, sweep

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService


def enable(
    service: EnhancedMaintenanceModeService,
    actor: Actor,
    req: EnableRequest,
    *,
    invalidate: Invalidator | None = None,
) -> Outcome:
    """Commit ``req`` (compare-and-set in SQL), fence it, then log non-admins out.

    Sessions are invalidated when ``req.invalidate_sessions`` says so, by default
    (None) when ``MAINTENANCE_INVALIDATE_ON_ENABLE`` does; never in TEST mode.
    Anything raised comes before the commit (bad input, conflict, store down,
    not authorised); after it, failures are effects of the outcome.
    """
    authorize(service, actor)
    result = service.enable(req)
    status = result.status
    effects = [fencing_effect(result)]
    data = {**result.to_dict(), "sessions": None}
    wanted = req.invalidate_sessions
    if wanted is None:
        wanted = service.settings.invalidate_on_enable
    if wanted and not status.test_mode:
        sessions, effect = sweep(service, invalidate, actor.name, wait=req.wait)
        data["sessions"] = sessions
        effects.append(effect)
    return Outcome(
        action="enable",
        committed=True,
        version=status.version,
        summary=f"Maintenance ({status.mode.value}) is on, status version {status.version}.",
        effects=tuple(effects),
        data=data,
        value=result,
    )
