"""Pure blocking policy: which operations a mode blocks and who gets through.

No I/O here: every function is a function of a ``MaintenanceStatus`` and
facts about the caller, so web nodes, workers and the CLI decide identically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum

from ..errors import ValidationError
from .modes import MaintenanceMode, OperationType
from .operations import NEVER_BLOCKED, SEED_REGISTRY, OperationRegistry
from .status import MaintenanceStatus

#: The seed vocabulary's default blocked set per mode (TEST: what *would* be blocked);
#: an app's own: ``OperationRegistry.default_blocked``.
DEFAULT_BLOCKED: dict[MaintenanceMode, frozenset[OperationType]] = {
    mode: SEED_REGISTRY.default_blocked(mode) for mode in MaintenanceMode
}


class Decision(StrEnum):
    """Outcome of asking whether an operation may run now."""

    ALLOW = "allow"
    BLOCK = "block"
    WOULD_BLOCK = "would_block"  # TEST mode: allowed, but recorded


def ordered(
    ops: Iterable[OperationType], registry: OperationRegistry = SEED_REGISTRY
) -> tuple[OperationType, ...]:
    """Operations in declaration order, without duplicates (stable JSON)."""
    return registry.ordered(ops)


def blocked_set_for(
    mode: MaintenanceMode,
    override: Iterable[OperationType] | None = None,
    registry: OperationRegistry = SEED_REGISTRY,
) -> tuple[OperationType, ...]:
    """The blocked set an activation in ``mode`` stores, honouring an override."""
    if override is None:
        return registry.ordered(registry.default_blocked(mode))
    chosen = set(override)
    forbidden = chosen & NEVER_BLOCKED
    if forbidden:
        names = ", ".join(op.value for op in registry.ordered(forbidden))
        raise ValidationError(
            f"{names} can never be blocked (users need status, admins need to log in)",
            field="blocked_operations",
        )
    return registry.ordered(chosen)


#: A fact about the caller, or a function computing it only when the policy needs it.
Fact = bool | Callable[[], bool]


def _holds(fact: Fact) -> bool:
    return fact() if callable(fact) else fact


def decide(
    status: MaintenanceStatus,
    operation: OperationType,
    *,
    is_admin: Fact = False,
    is_critical_admin: Fact = False,
    continuation: bool = False,
) -> Decision:
    """Whether ``operation`` may run under ``status`` for this caller.

    Precedence: inactive > not in the blocked set > TEST (record only) >
    critical-admin-only lockdown > admin bypass > continuation of running
    work (NORMAL only) > block. Caller facts may be functions: they are
    evaluated only when the answer depends on them (the hot path rarely does).
    """
    if not status.is_active:
        return Decision.ALLOW
    lockdown_possible = status.critical_admin_only and status.mode is MaintenanceMode.EMERGENCY
    if operation not in status.blocked_operations and not (
        lockdown_possible and operation not in NEVER_BLOCKED
    ):
        return Decision.ALLOW
    if status.test_mode:
        return Decision.WOULD_BLOCK
    critical = lockdown_possible and _holds(is_critical_admin)
    if lockdown_possible and not critical:
        return Decision.BLOCK
    if critical or _holds(is_admin) or _holds(is_critical_admin):
        return Decision.ALLOW
    if continuation and status.mode is MaintenanceMode.NORMAL:
        return Decision.ALLOW
    return Decision.BLOCK
