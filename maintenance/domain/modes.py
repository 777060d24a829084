"""The control plane's vocabulary: maintenance modes and operation types."""

from __future__ import annotations

from enum import StrEnum


class MaintenanceMode(StrEnum):
    """How maintenance behaves while it is in force."""

    NORMAL = "normal"
    EMERGENCY = "emergency"
    TEST = "test"

    def __str__(self) -> str:
        return self.value


class OperationType(StrEnum):
    """The kinds of work a request or a Celery task represents."""

    CAPTION_GENERATION = "caption_generation"
    JOB_CREATION = "job_creation"
    PLATFORM_OPERATIONS = "platform_operations"
    BATCH_OPERATIONS = "batch_operations"
    USER_DATA_MODIFICATION = "user_data_modification"
    IMAGE_PROCESSING = "image_processing"
    ADMIN_OPERATIONS = "admin_operations"
    AUTHENTICATION = "authentication"
    READ_OPERATIONS = "read_operations"
    STATUS_CHECK = "status_check"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


#: The six kinds of user work that NORMAL maintenance stops.
WORK_OPERATIONS: frozenset[OperationType] = frozenset(
    {
        OperationType.CAPTION_GENERATION,
        OperationType.JOB_CREATION,
        OperationType.PLATFORM_OPERATIONS,
        OperationType.BATCH_OPERATIONS,
        OperationType.USER_DATA_MODIFICATION,
        OperationType.IMAGE_PROCESSING,
    }
)


def parse_mode(value: str | MaintenanceMode) -> MaintenanceMode:
    """Return the mode named by ``value`` (case-insensitive) or raise ``ValueError``."""
    if isinstance(value, MaintenanceMode):
        return value
    try:
        return MaintenanceMode(str(value).strip().lower())
    except ValueError:
        known = ", ".join(m.value for m in MaintenanceMode)
        raise ValueError(f"unknown maintenance mode {value!r} (known: {known})") from None


def parse_operation(value: str | OperationType) -> OperationType:
    """Return the operation type named by ``value`` (case-insensitive) or raise ``ValueError``."""
    if isinstance(value, OperationType):
        return value
    found = _BY_VALUE.get(value)
    if found is not None:
        return found
    try:
        return OperationType(str(value).strip().lower().replace("-", "_"))
    except ValueError:
        known = ", ".join(o.value for o in OperationType)
        raise ValueError(f"unknown operation type {value!r} (known: {known})") from None


_BY_VALUE: dict[str, OperationType] = {op.value: op for op in OperationType}
