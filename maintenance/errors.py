"""Every exception the control plane raises, under one root: ``MaintenanceError``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .modes import OperationType
    from .status import MaintenanceStatus


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


class StoreUnavailable(MaintenanceError):
    """The SQL system of record cannot be reached; nothing was changed."""


class NotFound(MaintenanceError):
    """A record (report, job, emergency) that was asked for does not exist."""


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
