"""Every exception the control plane raises, under one root: ``MaintenanceError``.

Real errors (something is wrong: input, a store, a conflict) come first; the
control-flow exception ``OperationBlocked`` (maintenance refused an operation by
design, like Celery's ``Reject``) is kept apart at the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .domain.modes import OperationType
    from .domain.status import MaintenanceStatus
    from .emergency.deactivation import DeactivationCheck


class MaintenanceError(Exception):
    """Root of every error raised by the maintenance control plane."""


class ValidationError(MaintenanceError, ValueError):
    """Input to the control plane was wrong; the message says what and why."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConflictError(MaintenanceError):
    """Another administrator changed the state first (compare-and-set lost)."""

    def __init__(self, message: str, current_version: int) -> None:
        super().__init__(message)
        self.current_version = current_version


class DeactivationRefused(ConflictError):
    """The emergency was not lifted: ``check.problems`` say why (``force`` overrides)."""

    def __init__(self, check: DeactivationCheck, current_version: int) -> None:
        summary = "; ".join(check.problems[:5])
        more = f" (+{len(check.problems) - 5} more)" if len(check.problems) > 5 else ""
        super().__init__(
            f"emergency not lifted: {summary}{more}; fix it or force",
            current_version=current_version,
        )
        self.check = check


class StoreUnavailable(MaintenanceError):
    """The SQL system of record cannot be reached; nothing was changed."""


class StoreMismatch(StoreUnavailable):
    """The SQL store is not the fleet's system of record (empty, another store, or
    rolled back to an older version): nothing was written; the message says what to do."""


class RedisUnavailable(StoreUnavailable):
    """Redis (the bus, the registries, the session index) cannot be reached; the
    message says what was and was not changed."""


class NotFound(MaintenanceError):
    """A record (report, job, emergency) that was asked for does not exist."""


class NotAuthorized(MaintenanceError):
    """Only an administrator may do this."""


class EmbeddedRedisError(MaintenanceError):
    """The embedded Redis server could not be started."""


class ApiError(MaintenanceError):
    """An HTTP API failure with its status and JSON body (rendered by ``maintenance.web``)."""

    def __init__(
        self, status: int, error: str, message: str, *, field: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": error, "message": message, "field": field, **extra}


class CsrfError(MaintenanceError):
    """A form post without a valid token for this session (or from another site)."""


# -- control flow ---------------------------------------------------------------


class OperationBlocked(MaintenanceError):
    """An operation was refused because maintenance is in force.

    This is a control-flow signal for callers (publishers, request handlers),
    not a malfunction: it carries everything needed to answer the user.
    """

    def __init__(
        self,
        operation: OperationType,
        status: MaintenanceStatus,
        retry_after: int | None,
        message: str | None = None,
    ) -> None:
        self.operation = operation
        self.status = status
        self.retry_after = retry_after
        self.message = message or (
            f"{operation.value} is unavailable during maintenance: {status.reason}"
        )
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable across process boundaries (Celery result backends, pools).
        return (type(self), (self.operation, self.status, self.retry_after, self.message))
