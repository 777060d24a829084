"""``adopt_store``: an operator makes the fleet use a new or restored SQL store, on purpose.

The store's state row jumps above every version the fleet has seen (so every node
applies it as the newest, and the rollback check holds again), carrying the status
the fleet enforces now (``use="fleet"``, the default) or the store's own
(``use="store"``). The adoption is logged in the adopted store's event log, then
Redis records the store's identity and the status is propagated, fenced.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from .domain.record import judge
from .domain.status import MaintenanceStatus
from .domain.validation import validate_actor, validate_note
from .errors import StoreUnavailable, ValidationError
from .fencing import ActivationResult
from .record import identity_json
from .redisconn import REDIS_ERRORS, describe_redis_error
from .store.eventlog import MaintenanceEvent
from .store.identity import read_record
from .store.migrations import SCHEMA_VERSION

if TYPE_CHECKING:
    from .service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance")
USES = ("fleet", "store")


def adopt_store(
    service: EnhancedMaintenanceModeService,
    actor: str,
    reason: str | None = None,
    *,
    use: str = "fleet",
    wait: float | None = None,
) -> ActivationResult | None:
    """Make the fleet use ``service``'s SQL store; None when it already does."""
    actor = validate_actor(actor, "actor")
    reason = validate_note(reason)
    if use not in USES:
        raise ValidationError(f"use must be one of {', '.join(USES)}", field="use")
    guard = service.record
    try:
        fleet = guard.fleet()
        status_in_redis = service.cache.bus.read() if use == "fleet" else None
    except REDIS_ERRORS as exc:
        raise StoreUnavailable(f"Redis unavailable ({describe_redis_error(exc)})") from exc
    if not fleet.reachable:
        raise StoreUnavailable("Redis unavailable: the fleet cannot be told; nothing was changed")
    sql = read_record(service.db)
    if sql.schema_version < SCHEMA_VERSION or sql.identity is None or sql.version is None:
        raise StoreUnavailable(
            f"the SQL store's schema is at version {sql.schema_version} of {SCHEMA_VERSION}: "
            "run `maintenance db upgrade` first; nothing was changed"
        )
    if judge(sql, fleet).ok and fleet.identity is not None:
        return None
    own = service.state.load()
    source = status_in_redis or own
    status_from = "fleet" if status_in_redis is not None else "store"
    version = max(sql.version, fleet.version or 0) + 1
    status: MaintenanceStatus = source.with_changes(version=version)
    event = MaintenanceEvent(
        kind="store_adopted",
        actor=actor,
        reason=reason,
        activation_id=status.activation_id,
        details={
            "store": sql.identity.to_dict(),
            "previous_store": fleet.identity.to_dict() if fleet.identity else None,
            "store_version": sql.version,
            "fleet_version": fleet.version,
            "status_from": status_from,
        },
    )
    stored = service.state.adopt(sql.version, status, event)
    try:
        service.redis.set(service.keys.store, identity_json(sql.identity))
    except REDIS_ERRORS as exc:
        raise StoreUnavailable(
            f"the store recorded its adoption (version {version}) but Redis could not be told "
            f"({describe_redis_error(exc)}); run `maintenance db adopt` again"
        ) from exc
    guard.forget()
    log.warning(
        "maintenance: %s adopted SQL %s (store was at version %s, fleet at %s; status from %s)",
        actor,
        sql.identity.describe(),
        sql.version,
        fleet.version,
        status_from,
    )
    result = service._propagate(stored, wait)
    return replace(result, details={**result.details, **event.details})
