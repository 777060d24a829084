"""The enable request: what switching maintenance on (or changing it) may say.

One model for every way in. The Python API, the CLI and the admin panel read it in
the operator's grammar (``validate``, ``check``), the JSON API in its exact one
(``from_json``); the JSON API's field types and OpenAPI schema (``JSON_FIELDS``) and
the numbers the panel's scripts check against (``limits``) are derived from the
limits in ``validation``, so no entry point keeps a copy of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ValidationError
from .modes import MaintenanceMode, OperationType
from .operations import SEED_REGISTRY, OperationRegistry
from .policy import blocked_set_for
from .validation import (
    DURATION_UNITS,
    EXACT_DURATION_PATTERN,
    MAX_DURATION,
    MAX_DURATION_TEXT,
    MAX_INT,
    MAX_OPERATOR_WAIT,
    MAX_REASON,
    MAX_WAIT,
    TEXT_PATTERN,
    TEXT_RULES,
    VISIBLE_TEXT_PATTERN,
    exact_duration,
    exact_length,
    exact_mode,
    exact_operations,
    exact_version,
    parse_duration,
    validate_actor,
    validate_mode,
    validate_operations,
    validate_reason,
    validate_wait,
)


@dataclass(frozen=True)
class EnableRequest:
    """A checked request to switch maintenance on (or change it while on)."""

    reason: str
    actor: str
    mode: MaintenanceMode = MaintenanceMode.NORMAL
    seconds: int | None = None
    #: The blocked set asked for; None: the mode's default set.
    override: tuple[OperationType, ...] | None = None
    critical_admin_only: bool = False
    #: None: the deployment's default (``Settings.block_login``, applied by the service).
    block_login: bool | None = None
    #: None: the web app's default (``MAINTENANCE_INVALIDATE_ON_ENABLE``).
    invalidate_sessions: bool | None = None
    #: Seconds to wait for every live node to apply it; None: the configured default.
    wait: float | None = None
    expected_version: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    #: The app's vocabulary the blocked set was read in (and the mode's default comes from).
    operations: OperationRegistry = field(default=SEED_REGISTRY, repr=False, compare=False)

    @property
    def blocked(self) -> tuple[OperationType, ...]:
        """The blocked set the activation stores (a TEST one: what would be blocked)."""
        return blocked_set_for(self.mode, self.override, self.operations)

    @property
    def login_blocked(self) -> bool:
        """Whether non-admin logins are refused (never in TEST; unset counts as yes)."""
        return self.block_login is not False and self.mode is not MaintenanceMode.TEST

    def with_defaults(self, *, block_login: bool) -> EnableRequest:
        """This request with the deployment's defaults filled in where it left them unset."""
        return self if self.block_login is not None else replace(self, block_login=block_login)

    @classmethod
    def check(
        cls,
        values: Mapping[str, Any],
        actor: object,
        *,
        exact: bool = False,
        operations: OperationRegistry = SEED_REGISTRY,
    ) -> tuple[EnableRequest | None, dict[str, str]]:
        """Every field of ``values`` checked on its own: the request, or every error by field.

        ``exact`` reads the JSON API's grammar, else the operator's; operation names
        are ``operations``' (the app's vocabulary).
        """
        errors: dict[str, str] = {}
        readers = _EXACT if exact else _TYPED
        read: dict[str, Any] = {}
        for name, reader in readers.items():
            try:
                if name == "blocked_operations":
                    read[name] = reader(values.get(name), operations)
                else:
                    read[name] = reader(values.get(name))
                if name == "blocked_operations" and "mode" in read:
                    # refuses the never-blocked kinds
                    blocked_set_for(read["mode"], read[name], operations)
            except ValidationError as exc:
                errors.setdefault(exc.field or name, str(exc))
        try:
            who = validate_actor(actor, "enabled_by")
        except ValidationError as exc:
            errors.setdefault(exc.field or "enabled_by", str(exc))
        if errors:
            return None, errors
        ops = read["blocked_operations"]
        return (
            cls(
                reason=read["reason"],
                actor=who,
                mode=read["mode"],
                seconds=read["duration"],
                override=None if ops is None else tuple(ops),
                critical_admin_only=bool(values.get("critical_admin_only") or False),
                block_login=_flag(values.get("block_login")),
                invalidate_sessions=_flag(values.get("invalidate_sessions")),
                wait=read["wait"],
                expected_version=read["expected_version"],
                details=dict(values.get("details") or {}),
                operations=operations,
            ),
            {},
        )

    @classmethod
    def validate(
        cls,
        reason: object,
        duration: Any = None,
        mode: Any = MaintenanceMode.NORMAL,
        enabled_by: object = None,
        blocked_operations: Any = None,
        *,
        critical_admin_only: bool = False,
        block_login: bool | None = None,
        invalidate_sessions: bool | None = None,
        wait: float | None = None,
        expected_version: int | None = None,
        details: Mapping[str, Any] | None = None,
        operations: OperationRegistry = SEED_REGISTRY,
    ) -> EnableRequest:
        """The operator's grammar; the first problem raises ``ValidationError`` (naming
        the field) before anything changes."""
        values = {
            "reason": reason,
            "duration": duration,
            "mode": mode,
            "blocked_operations": blocked_operations,
            "critical_admin_only": critical_admin_only,
            "block_login": block_login,
            "invalidate_sessions": invalidate_sessions,
            "wait": wait,
            "expected_version": expected_version,
            "details": details,
        }
        return _first(cls.check(values, enabled_by, operations=operations))

    @classmethod
    def from_json(
        cls,
        body: Mapping[str, Any],
        actor: str,
        *,
        details: Mapping[str, Any] | None = None,
        operations: OperationRegistry = SEED_REGISTRY,
    ) -> EnableRequest:
        """The JSON API's body (its types already checked against ``json_fields``)."""
        return _first(
            cls.check({**body, "details": details or {}}, actor, exact=True, operations=operations)
        )


def _flag(value: object) -> bool | None:
    return None if value is None else bool(value)


def _first(checked: tuple[EnableRequest | None, dict[str, str]]) -> EnableRequest:
    req, errors = checked
    if req is None:
        name, message = next(iter(errors.items()))
        raise ValidationError(message, field=name)
    return req


def _exact_reason(value: object) -> str:
    if isinstance(value, str) and value.strip():
        exact_length(value)
    return validate_reason(value)


Reader = Callable[..., Any]
#: Field readers in the order their errors are reported.
_TYPED: dict[str, Reader] = {
    "reason": validate_reason,
    "duration": parse_duration,
    "mode": lambda v: validate_mode(MaintenanceMode.NORMAL if v is None else v),
    "blocked_operations": validate_operations,
    "wait": validate_wait,
    "expected_version": exact_version,
}
_EXACT: dict[str, Reader] = {
    "reason": _exact_reason,
    "duration": exact_duration,
    "mode": exact_mode,
    "blocked_operations": exact_operations,
    "wait": lambda v: validate_wait(v, maximum=MAX_WAIT),
    "expected_version": exact_version,
}


# -- what the JSON API and the panel's scripts are told ---------------------------------------


@dataclass(frozen=True)
class JsonField:
    """One field of a JSON body: the JSON types it may take and its JSON Schema."""

    types: tuple[type, ...]
    schema: dict[str, Any]


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_NONE = type(None)
_BOOL = {"type": "boolean"}
#: A required reason, as the JSON API counts it (the text as sent).
REASON = JsonField(
    (str,),
    {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_REASON,
        "pattern": VISIBLE_TEXT_PATTERN,
        "description": TEXT_RULES,
    },
)
#: An optional note (why maintenance ended, why sessions were invalidated...).
NOTE = JsonField(
    (str, _NONE),
    nullable(
        {
            "type": "string",
            "maxLength": MAX_REASON,
            "pattern": TEXT_PATTERN,
            "description": TEXT_RULES,
        }
    ),
)
#: Seconds to wait for every node to apply the change.
WAIT = JsonField(
    (int, float, _NONE), nullable({"type": "number", "minimum": 0, "maximum": MAX_WAIT})
)


def duration_field(description: str) -> JsonField:
    """An expected length: whole seconds or one number and unit."""
    return JsonField(
        (str, int, _NONE),
        {
            "description": description,
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_DURATION},
                {"type": "string", "pattern": EXACT_DURATION_PATTERN},
                {"type": "null"},
            ],
        },
    )


def json_fields(operations: OperationRegistry = SEED_REGISTRY) -> dict[str, JsonField]:
    """The JSON API's enable body, field by field, in ``operations``' vocabulary."""
    return {
        "reason": REASON,
        "duration": duration_field(
            f"Seconds, or one number and unit like 90s, 30m, 2h, 1d (at most {MAX_DURATION_TEXT})."
        ),
        "mode": JsonField(
            (str, _NONE), {"type": "string", "enum": [m.value for m in MaintenanceMode]}
        ),
        "blocked_operations": JsonField(
            (list, _NONE),
            nullable(
                {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "enum": operations.blockable(),
                    },
                }
            ),
        ),
        "critical_admin_only": JsonField((bool,), _BOOL),
        "block_login": JsonField((bool, _NONE), nullable(_BOOL)),
        "invalidate_sessions": JsonField((bool, _NONE), nullable(_BOOL)),
        "wait": WAIT,
        "expected_version": JsonField(
            (int, _NONE), nullable({"type": "integer", "minimum": 0, "maximum": MAX_INT})
        ),
    }


#: The seed vocabulary's enable body.
JSON_FIELDS: dict[str, JsonField] = json_fields()
JSON_REQUIRED = ("reason",)


def limits() -> dict[str, Any]:
    """The numbers and names the panel's scripts check a form against before sending it."""
    return {
        "max_reason": MAX_REASON,
        "max_duration": MAX_DURATION,
        "max_duration_text": MAX_DURATION_TEXT,
        "max_wait": MAX_WAIT,
        "max_operator_wait": MAX_OPERATOR_WAIT,
        "duration_units": dict(DURATION_UNITS),
        "modes": [m.value for m in MaintenanceMode],
    }
