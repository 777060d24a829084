"""Log every non-admin out: the ``sessions invalidate`` command, and the sweep that
``enable`` and ``emergency`` run after they commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import MaintenanceError
from ..redisconn import REDIS_ERRORS, describe_redis_error
from ..session_invalidation import invalidator
from .actor import Actor, authorize
from .login_block import set_login_block
from .outcome import Effect, Outcome

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService

#: ``invalidate(actor_name, wait=..., reason=...)`` -> an ``InvalidationResult``: how
#: non-admin sessions are removed (a web app's manager knows its session store; by
#: default the store the web app registered in Redis).
Invalidator = Callable[..., Any]


def invalidate_sessions(
    service: EnhancedMaintenanceModeService,
    actor: Actor,
    *,
    invalidate: Invalidator | None = None,
    wait: float | None = None,
    reason: str | None = None,
) -> Outcome:
    """Remove every non-admin session and raise the epoch that turns cookie sessions away.

    Refused before anything changes when SQL cannot be read or Redis is down; when
    the epoch could not be recorded afterwards, the outcome says so.
    """
    authorize(service, actor)
    result = (invalidate or invalidator(service))(actor.name, wait=wait, reason=reason)
    data = result.to_dict()
    effects = [_status_effect(data)]
    return Outcome(
        action="invalidate_sessions",
        committed=True,
        version=data.get("status_version"),
        summary=_summary(data),
        effects=tuple(effects),
        data=data,
        value=result,
    )


def force_session_cleanup(
    service: EnhancedMaintenanceModeService,
    actor: Actor,
    *,
    wait: float | None = None,
    reason: str | None = None,
) -> Outcome:
    """Refuse non-admin logins (while maintenance is on), then log every non-admin out."""
    status = authorize(service, actor)
    if status.is_active and not status.login_blocked:
        set_login_block(service, actor, True, reason=reason, wait=wait)
    return invalidate_sessions(service, actor, wait=wait, reason=reason)


def sweep(
    service: EnhancedMaintenanceModeService,
    invalidate: Invalidator | None,
    actor_name: str,
    *,
    wait: float | None = None,
    reason: str | None = None,
) -> tuple[dict[str, Any] | None, Effect]:
    """The session sweep that follows a committed change: never raises, says how it went."""
    try:
        result = (invalidate or invalidator(service))(actor_name, wait=wait, reason=reason)
    except REDIS_ERRORS as exc:
        return None, Effect("sessions", False, f"not invalidated: {describe_redis_error(exc)}")
    except MaintenanceError as exc:
        return None, Effect("sessions", False, f"not invalidated: {exc}")
    data = result.to_dict()
    if data.get("publish_error"):
        return data, _status_effect(data)
    return data, Effect("sessions", True, _summary(data))


def _summary(data: dict[str, Any]) -> str:
    where = "" if data.get("server_side", True) else " (cookie sessions only)"
    return (
        f"{data.get('count', 0)} non-admin session(s) logged out{where}; "
        f"session epoch now {data.get('epoch')}."
    )


def _status_effect(data: dict[str, Any]) -> Effect:
    error = data.get("publish_error")
    if error:
        return Effect(
            "sessions",
            False,
            f"{data.get('count', 0)} session(s) removed and epoch {data.get('epoch')} raised "
            f"in Redis, but {error}: other web nodes refuse old cookie sessions only from "
            "their next status change",
        )
    return Effect("sessions", True, "every web node has the new epoch")
