"""The panel's forms, parsed and checked on the server with the core's validation rules.

Every field is checked independently so the page can show every mistake at once,
each next to its field. The browser applies the same rules first (``validate.js``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from ...domain.modes import MaintenanceMode, OperationType
from ...domain.policy import blocked_set_for
from ...domain.validation import (
    MAX_REASON,
    parse_duration,
    validate_mode,
    validate_note,
    validate_reason,
)
from ...errors import ValidationError

#: Operation types an override may name, in display order, with their labels.
BLOCKABLE: tuple[tuple[OperationType, str], ...] = (
    (OperationType.CAPTION_GENERATION, "Caption generation"),
    (OperationType.JOB_CREATION, "Job creation"),
    (OperationType.PLATFORM_OPERATIONS, "Platform operations"),
    (OperationType.BATCH_OPERATIONS, "Batch operations"),
    (OperationType.USER_DATA_MODIFICATION, "User data changes"),
    (OperationType.IMAGE_PROCESSING, "Image processing"),
    (OperationType.READ_OPERATIONS, "Reads"),
    (OperationType.ADMIN_OPERATIONS, "Admin operations (non-admins)"),
    (OperationType.UNKNOWN, "Unclassified requests"),
)
#: Never blockable; shown disabled so the operator sees why.
UNBLOCKABLE: tuple[tuple[OperationType, str], ...] = (
    (OperationType.STATUS_CHECK, "Status checks"),
    (OperationType.AUTHENTICATION, "Logins"),
)
MODES: tuple[tuple[str, str], ...] = (
    (MaintenanceMode.NORMAL.value, "Normal: block user work, admins pass"),
    (MaintenanceMode.EMERGENCY.value, "Emergency: block everything but admin work"),
    (MaintenanceMode.TEST.value, "Test (rehearsal): block nothing, record what would be"),
)
SCOPES = ("default", "custom")
_VERSION = re.compile(r"[0-9]{1,18}")
_OPERATIONS = {op.value: op for op in OperationType}


#: ``request.form`` or ``request.args``.
FormData = MultiDict[str, str]


def _checked(form: FormData, name: str) -> bool:
    return form.get(name) in ("on", "1", "true", "yes")


@dataclass
class EnableRequest:
    """A checked "enable (or change) maintenance" form."""

    reason: str
    duration: int | None
    mode: MaintenanceMode
    blocked_operations: list[OperationType] | None  # None: the mode's default set
    critical_admin_only: bool
    block_login: bool
    invalidate_sessions: bool
    expected_version: int | None
    acknowledged: bool
    emergency_confirmed: bool

    @property
    def effective_blocked(self) -> tuple[OperationType, ...]:
        """The set the activation will store."""
        return blocked_set_for(self.mode, self.blocked_operations)


@dataclass
class FormResult:
    """Values to re-render, errors by field, and the checked request when there are none."""

    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    request: Any = None

    @property
    def ok(self) -> bool:
        """No field has an error."""
        return not self.errors


def _field(errors: dict[str, str], name: str, check: Callable[[], Any]) -> Any:
    try:
        return check()
    except ValidationError as exc:
        errors[exc.field or name] = str(exc)
        return None


def _operations(raw: list[str], scope: str) -> list[OperationType] | None:
    if scope != "custom":
        return None
    out = []
    for value in raw:
        if value not in _OPERATIONS:
            raise ValidationError(f"unknown operation type {value!r}", field="blocked_operations")
        out.append(_OPERATIONS[value])
    # The core refuses the never-blocked kinds (status checks, logins) in any mode.
    blocked_set_for(MaintenanceMode.NORMAL, out)
    return out


def _version(raw: str | None) -> int | None:
    if raw in (None, ""):
        return None
    if not _VERSION.fullmatch(str(raw)):
        raise ValidationError("the form's status version is not a number", field="form")
    return int(str(raw))


def _scope(raw: str | None) -> str:
    scope = raw or "default"
    if scope not in SCOPES:
        raise ValidationError("choose the mode's default set or a custom set", field="scope")
    return scope


def enable_values(form: FormData) -> dict[str, Any]:
    """The raw values of an enable form, for re-rendering it."""
    return {
        "reason": str(form.get("reason") or "")[: MAX_REASON * 2],
        "duration": str(form.get("duration") or "")[:40],
        "mode": str(form.get("mode") or MaintenanceMode.NORMAL.value),
        "scope": str(form.get("scope") or "default"),
        "operations": [str(v) for v in form.getlist("operations")],
        "critical_admin_only": _checked(form, "critical_admin_only"),
        "block_login": _checked(form, "block_login"),
        "invalidate_sessions": _checked(form, "invalidate_sessions"),
        "acknowledge_warnings": _checked(form, "acknowledge_warnings"),
    }


def parse_enable(form: FormData, *, emergency_phrase: str) -> FormResult:
    """Check an enable form; ``result.request`` is an ``EnableRequest`` when ``result.ok``."""
    values = enable_values(form)
    errors: dict[str, str] = {}
    reason = _field(errors, "reason", lambda: validate_reason(form.get("reason")))
    raw_duration = str(form.get("duration") or "").strip()
    duration = _field(errors, "duration", lambda: parse_duration(raw_duration or None))
    mode = _field(errors, "mode", lambda: validate_mode(form.get("mode") or "normal"))
    scope = _field(errors, "scope", lambda: _scope(form.get("scope")))
    ops = _field(
        errors, "blocked_operations", lambda: _operations(form.getlist("operations"), scope or "")
    )
    version = _field(errors, "form", lambda: _version(form.get("expected_version")))
    confirmed = str(form.get("confirm_emergency") or "").strip() == emergency_phrase
    if mode is MaintenanceMode.EMERGENCY and not confirmed:
        errors["confirm_emergency"] = f"type {emergency_phrase} to confirm emergency maintenance"
    if errors:
        return FormResult(values, errors)
    return FormResult(
        values,
        request=EnableRequest(
            reason=reason,
            duration=duration,
            mode=mode,
            blocked_operations=ops,
            critical_admin_only=values["critical_admin_only"],
            block_login=values["block_login"],
            invalidate_sessions=values["invalidate_sessions"],
            expected_version=version,
            acknowledged=values["acknowledge_warnings"],
            emergency_confirmed=confirmed,
        ),
    )


@dataclass
class DisableRequest:
    """A checked "end maintenance" form."""

    requeue: bool
    note: str | None


def parse_disable(form: FormData) -> FormResult:
    """Check a disable form (the note is optional, at most 500 characters)."""
    raw = str(form.get("note") or "")
    requeue = _checked(form, "requeue")
    values = {"requeue": requeue, "note": raw.strip()[: MAX_REASON * 2]}
    errors: dict[str, str] = {}
    note = _field(errors, "note", lambda: validate_note(raw, field="note"))
    if errors:
        return FormResult(values, errors)
    return FormResult(values, request=DisableRequest(requeue, note))
