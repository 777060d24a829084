"""The panel's forms, read on the server by the core's enable-request model.

Every field is checked on its own so the page can show every mistake at once,
each next to its field. The browser applies the same rules first (``validate.js``,
with the limits the page hands it from the same model).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from ...domain.enable_request import EnableRequest
from ...domain.modes import MaintenanceMode, OperationType
from ...domain.operations import NEVER_BLOCKED, SEED_REGISTRY, OperationRegistry
from ...domain.validation import MAX_REASON, validate_note
from ...errors import ValidationError


def blockable(operations: OperationRegistry) -> tuple[tuple[OperationType, str], ...]:
    """Operation types an override may name, in display order, with their labels."""
    return tuple((op, operations.label(op)) for op in operations if op not in NEVER_BLOCKED)


def unblockable(operations: OperationRegistry) -> tuple[tuple[OperationType, str], ...]:
    """Never blockable; shown disabled so the operator sees why."""
    return tuple((op, operations.label(op)) for op in operations if op in NEVER_BLOCKED)


MODES: tuple[tuple[str, str], ...] = (
    (MaintenanceMode.NORMAL.value, "Normal: block user work, admins pass"),
    (MaintenanceMode.EMERGENCY.value, "Emergency: block everything but admin work"),
    (MaintenanceMode.TEST.value, "Test (rehearsal): block nothing, record what would be"),
)
SCOPES = ("default", "custom")
_VERSION = re.compile(r"[0-9]{1,18}")


#: ``request.form`` or ``request.args``.
FormData = MultiDict[str, str]


def _checked(form: FormData, name: str) -> bool:
    return form.get(name) in ("on", "1", "true", "yes")


@dataclass(frozen=True)
class EnableForm:
    """A checked "enable (or change) maintenance" form: the core's request, and whether
    the operator acknowledged the consistency check's warnings."""

    request: EnableRequest
    acknowledged: bool


@dataclass
class FormResult:
    """Values to re-render, errors by field, and the checked form when there are none."""

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


def parse_enable(
    form: FormData,
    *,
    emergency_phrase: str,
    actor: str,
    operations: OperationRegistry = SEED_REGISTRY,
    in_emergency: bool = False,
) -> FormResult:
    """Check an enable form; ``result.request`` is an ``EnableForm`` when ``result.ok``.
    Declaring an emergency asks for ``emergency_phrase``; editing one already on
    (``in_emergency``) does not ask again."""
    values = enable_values(form)
    errors: dict[str, str] = {}
    scope = _field(errors, "scope", lambda: _scope(form.get("scope")))
    version = _field(errors, "form", lambda: _version(form.get("expected_version")))
    req, invalid = EnableRequest.check(
        {
            "reason": form.get("reason"),
            "duration": str(form.get("duration") or "").strip() or None,
            "mode": form.get("mode") or MaintenanceMode.NORMAL.value,
            "blocked_operations": form.getlist("operations") if scope == "custom" else None,
            "critical_admin_only": values["critical_admin_only"],
            "block_login": values["block_login"],
            "invalidate_sessions": values["invalidate_sessions"],
            "expected_version": version,
            "details": {"via": "admin-ui"},
        },
        actor,
        operations=operations,
    )
    errors = {**invalid, **errors}
    confirmed = str(form.get("confirm_emergency") or "").strip() == emergency_phrase
    declaring = values["mode"].strip().lower() == MaintenanceMode.EMERGENCY and not in_emergency
    if declaring and not confirmed:
        errors["confirm_emergency"] = f"type {emergency_phrase} to confirm emergency maintenance"
    if errors or req is None:
        return FormResult(values, errors)
    return FormResult(values, request=EnableForm(req, values["acknowledge_warnings"]))


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
