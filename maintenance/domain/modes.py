"""The control plane's vocabulary: maintenance modes and operation types."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import ClassVar


class MaintenanceMode(StrEnum):
    """How maintenance behaves while it is in force."""

    NORMAL = "normal"
    EMERGENCY = "emergency"
    TEST = "test"

    def __str__(self) -> str:
        return self.value


class OperationType(str):
    """The name of a kind of work a request or a Celery task represents.

    A string; equal names are the same object (``is`` compares them). The seed
    vocabulary is available as class attributes; an app declares its own kinds
    in an ``OperationRegistry`` (``maintenance.domain.operations``).
    """

    __slots__ = ()
    _interned: ClassVar[dict[str, OperationType]] = {}

    CAPTION_GENERATION: ClassVar[OperationType]
    JOB_CREATION: ClassVar[OperationType]
    PLATFORM_OPERATIONS: ClassVar[OperationType]
    BATCH_OPERATIONS: ClassVar[OperationType]
    USER_DATA_MODIFICATION: ClassVar[OperationType]
    IMAGE_PROCESSING: ClassVar[OperationType]
    ADMIN_OPERATIONS: ClassVar[OperationType]
    AUTHENTICATION: ClassVar[OperationType]
    READ_OPERATIONS: ClassVar[OperationType]
    STATUS_CHECK: ClassVar[OperationType]
    UNKNOWN: ClassVar[OperationType]

    def __new__(cls, name: str) -> OperationType:
        found = cls._interned.get(name)
        if found is None:
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ValueError(
                    f"bad operation type name {name!r} (lower-case letters, digits and _)"
                )
            found = cls._interned.setdefault(name, super().__new__(cls, name))
        return found

    @property
    def value(self) -> str:
        """The name as a plain string."""
        return str.__str__(self)

    def __str__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"OperationType({str.__str__(self)!r})"

    def __reduce__(self) -> tuple[type[OperationType], tuple[str]]:
        return (OperationType, (str.__str__(self),))


_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

#: The seed vocabulary: the kinds a captioning app of the kind this project serves has.
SEED_WORK: tuple[str, ...] = (
    "caption_generation",
    "job_creation",
    "platform_operations",
    "batch_operations",
    "user_data_modification",
    "image_processing",
)
#: The kinds the control plane itself relies on, present in every vocabulary.
STRUCTURAL: tuple[str, ...] = (
    "admin_operations",
    "authentication",
    "read_operations",
    "status_check",
    "unknown",
)
for _name in SEED_WORK + STRUCTURAL:
    setattr(OperationType, _name.upper(), OperationType(_name))


#: The six kinds of user work that NORMAL maintenance stops (seed vocabulary).
WORK_OPERATIONS: frozenset[OperationType] = frozenset(OperationType(n) for n in SEED_WORK)


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
    """The seed vocabulary's operation type named by ``value`` (case-insensitive) or
    ``ValueError`` listing the known ones. An app's own kinds: ``OperationRegistry.parse``."""
    from .operations import SEED_REGISTRY

    return SEED_REGISTRY.parse(value)
