"""The OpenAPI 3.1 document of the status API (served at ``<prefix>/openapi.json``).

Request bodies and query limits come from ``bodies`` (and through it from the core's
enable-request model), so the document states what the views check.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ...domain.enable_request import JSON_REQUIRED, nullable
from ...domain.history import EVENT_KINDS
from ...domain.modes import MaintenanceMode
from ...domain.operations import SEED_REGISTRY, OperationRegistry
from . import bodies

_OPS = SEED_REGISTRY.names()
_BLOCKABLE = SEED_REGISTRY.blockable()
_MODES = [m.value for m in MaintenanceMode]
_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_DATETIME = {"type": "string", "format": "date-time"}
_OP = {"type": "string", "enum": _OPS}


#: What every fenced switch answers (``ActivationResult.to_dict``).
_ACTIVATION_REQUIRED = ["status", "fenced", "propagation", "lagging_nodes"]
_ACTIVATION_PROPS: dict[str, Any] = {
    "status": {"type": "object"},
    "fenced": _BOOL,
    "propagation": _STR,
    "applied_nodes": {"type": "array", "items": _STR},
    "lagging_nodes": {"type": "array", "items": {"type": "object"}},
    "waited_seconds": {"type": "number"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_NO_STORE = {"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}}

_PUBLIC_PROPS: dict[str, Any] = {
    "view": {"type": "string", "enum": ["public", "admin"]},
    "is_active": _BOOL,
    "mode": nullable({"type": "string", "enum": _MODES}),
    "test_mode": _BOOL,
    "reason": nullable(_STR),
    "message": _STR,
    "started_at": nullable(_DATETIME),
    "estimated_duration": nullable({"type": "integer", "minimum": 1}),
    "estimated_completion": nullable(_DATETIME),
    "retry_after": nullable({"type": "integer", "minimum": 1}),
    "overdue": _BOOL,
    "blocked_operations": {"type": "array", "items": _OP},
    "login_blocked": _BOOL,
    "version": {"type": "integer", "minimum": 0},
}

_WINDOW = {
    "type": "object",
    "required": ["start_at", "end_at", "mode", "reason"],
    "properties": {
        "start_at": _DATETIME,
        "end_at": _DATETIME,
        "mode": {"type": "string", "enum": _MODES},
        "reason": _STR,
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {
                "type": "string",
                "enum": [
                    "validation_error",
                    "unauthorized",
                    "forbidden",
                    "csrf",
                    "not_found",
                    "conflict",
                    "unsupported_media_type",
                    "unavailable",
                ],
            },
            "message": _STR,
            "field": nullable(_STR),
            "current_version": _INT,
        },
    },
    "StreamUnavailable": {
        "type": "object",
        "required": ["error", "message", "status_url", "retry_after"],
        "properties": {
            "error": {"type": "string", "const": "stream_unavailable"},
            "message": _STR,
            "status_url": _STR,
            "retry_after": {"type": "integer", "minimum": 1},
        },
    },
    "PublicStatus": {
        "type": "object",
        "description": "What any user may know. Administrators get AdminStatus instead.",
        "required": list(_PUBLIC_PROPS),
        "properties": {
            **_PUBLIC_PROPS,
            "upcoming_windows": {
                "type": "array",
                "description": "Scheduled windows not yet started, soonest first (GET /status).",
                "items": _WINDOW,
            },
        },
    },
    "AdminStatus": {
        "type": "object",
        "description": "PublicStatus plus who, live counters, health and nodes (admins only).",
        "required": [*_PUBLIC_PROPS, "enabled_by", "nodes"],
        "properties": {
            **_PUBLIC_PROPS,
            "enabled_by": nullable(_STR),
            "activation_id": nullable(_STR),
            "emergency_id": nullable(_STR),
            "critical_admin_only": _BOOL,
            "emergency_phase": nullable(_STR),
            "active_jobs_count": _INT,
            "deferred_jobs_count": _INT,
            "jobs_needing_action_count": _INT,
            "invalidated_sessions": _INT,
            "recovery_pending": _BOOL,
            "degraded": _BOOL,
            "degraded_reason": nullable(_STR),
            "updated_at": nullable(_DATETIME),
            "blocked_attempts": {"type": "object", "additionalProperties": _INT},
            "would_block_attempts": {"type": "object", "additionalProperties": _INT},
            "nodes": {"type": "array", "items": {"type": "object"}},
            "upcoming_windows": {"type": "array", "items": _WINDOW},
            "notifications": {
                "type": "object",
                "description": "Webhook delivery health: per endpoint pending, failed, last error.",
            },
        },
    },
    "Status": {"anyOf": [_ref("PublicStatus"), _ref("AdminStatus")]},
    "StatusEvent": {
        "type": "object",
        "description": (
            "One Server-Sent Event: `event: status`, `id:` the status version, "
            "`data:` the Status as JSON (public or admin view)."
        ),
        "required": ["event", "id", "data"],
        "properties": {
            "event": {"type": "string", "const": "status"},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _ref("Status"),
            },
            "retry": _INT,
        },
    },
    "BlockedOperations": {
        "type": "object",
        "required": ["is_active", "mode", "blocked_operations"],
        "properties": {
            "is_active": _BOOL,
            "mode": nullable({"type": "string", "enum": _MODES}),
            "blocked_operations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["operation", "message"],
                    "properties": {"operation": _OP, "message": _STR},
                },
            },
            "would_block": {"type": "array", "items": _OP},
            "attempts": {"type": "object", "additionalProperties": _INT},
            "would_block_attempts": {"type": "object", "additionalProperties": _INT},
            "rates_per_minute": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": _INT},
            },
            "recent": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Message": {
        "type": "object",
        "required": ["operation", "is_active", "blocked", "message", "retry_after"],
        "properties": {
            "operation": nullable(_OP),
            "is_active": _BOOL,
            "blocked": _BOOL,
            "message": _STR,
            "retry_after": nullable({"type": "integer", "minimum": 1}),
        },
    },
    "Maintenance503": {
        "type": "object",
        "description": "The body of any request refused because of maintenance.",
        "required": ["error", "operation", "reason", "mode", "estimated_completion", "message"],
        "properties": {
            "error": {"type": "string", "const": "maintenance"},
            "operation": _OP,
            "title": _STR,
            "reason": nullable(_STR),
            "mode": {"type": "string", "enum": _MODES},
            "estimated_completion": nullable(_DATETIME),
            "retry_after": nullable(_INT),
            "message": _STR,
            "status_url": nullable(_STR),
        },
    },
    "EnableRequest": bodies.schema(bodies.ENABLE, JSON_REQUIRED),
    "DisableRequest": bodies.schema(bodies.DISABLE),
    "ActivationResult": {
        "type": "object",
        "required": _ACTIVATION_REQUIRED,
        "properties": {**_ACTIVATION_PROPS, "sessions": nullable(_ref("Invalidation"))},
    },
    "EmergencyRequest": bodies.schema(bodies.EMERGENCY, ("reason",)),
    "EmergencyOffRequest": bodies.schema(bodies.EMERGENCY_OFF),
    "CriticalOnlyRequest": bodies.schema(bodies.CRITICAL_ONLY),
    "EmergencyActivation": {
        "type": "object",
        "description": "The fenced switch (ActivationResult) plus the emergency's facts.",
        "required": [
            *_ACTIVATION_REQUIRED,
            "emergency_id",
            "report_id",
            "plan",
            "trigger",
            "triggered_by",
        ],
        "properties": {
            **_ACTIVATION_PROPS,
            "emergency_id": _STR,
            "report_id": _STR,
            "plan": {
                "type": "object",
                "required": [
                    "plan_id",
                    "started_at",
                    "grace",
                    "kill_after",
                    "sigterm_at",
                    "kill_at",
                ],
            },
            "trigger": {"type": "string", "enum": ["person", "cli", "api", "automated"]},
            "triggered_by": _STR,
            "sessions": nullable(_ref("Invalidation")),
            "sessions_error": nullable(_STR),
            "running_jobs": _INT,
        },
    },
    "EmergencyDeactivation": {
        "type": "object",
        "required": ["status", "fenced", "emergency_id", "check", "requeue", "requeued"],
        "properties": {
            "status": {"type": "object"},
            "fenced": _BOOL,
            "propagation": _STR,
            "emergency_id": nullable(_STR),
            "check": {
                "type": "object",
                "required": ["ok", "problems", "notes"],
                "properties": {
                    "ok": _BOOL,
                    "problems": {"type": "array", "items": _STR},
                    "notes": {"type": "array", "items": _STR},
                },
            },
            "requeue": {"type": "string", "enum": ["done", "partial", "pending", "skipped"]},
            "requeued": {"type": "array", "items": {"type": "object"}},
            "not_rerun_safe": {"type": "array", "items": {"type": "object"}},
            "report_id": nullable(_STR),
        },
    },
    "EmergencyProgress": {
        "type": "object",
        "required": ["emergency_id", "active", "phase", "counts", "running", "workers"],
        "properties": {
            "emergency_id": nullable(_STR),
            "active": _BOOL,
            "phase": nullable({"type": "string", "enum": ["grace", "terminating", "terminated"]}),
            "plan": nullable({"type": "object"}),
            "counts": {"type": "object", "additionalProperties": _INT},
            "running": {"type": "array", "items": {"type": "object"}},
            "workers": {"type": "array", "items": {"type": "object"}},
            "seconds_to_sigterm": nullable({"type": "number", "minimum": 0}),
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "at", "kind"],
        "properties": {
            "id": nullable(_INT),
            "at": _DATETIME,
            "kind": _STR,
            "actor": nullable(_STR),
            "reason": nullable(_STR),
            "version": nullable(_INT),
            "activation_id": nullable(_STR),
            "details": {"type": "object"},
        },
    },
    "ActiveSessions": {
        "type": "object",
        "required": ["count", "admin_count", "window_seconds", "sample"],
        "properties": {
            "count": _INT,
            "admin_count": _INT,
            "window_seconds": _INT,
            "sample": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["user", "last_seen"],
                    "properties": {
                        "user": nullable(_STR),
                        "last_seen": {"type": "number"},
                        "kind": {"type": "string", "enum": ["server", "cookie"]},
                    },
                },
            },
        },
    },
    "Invalidation": {
        "type": "object",
        "required": ["count", "deleted", "epoch", "seconds", "server_side"],
        "properties": {
            "count": _INT,
            "deleted": nullable(_INT),
            "epoch": _INT,
            "seconds": {"type": "number"},
            "effective_seconds": {"type": "number"},
            "cleanup_seconds": nullable({"type": "number"}),
            "server_side": _BOOL,
            "status_version": nullable(_INT),
        },
    },
}

_ADMIN_ERRORS = {
    "401": _error("Not logged in."),
    "403": _error("Not an administrator, or a cross-site request (error `csrf`)."),
}
_WRITE_ERRORS = {
    **_ADMIN_ERRORS,
    "400": _error("Invalid body: malformed JSON, unknown field, wrong type or value."),
    "415": _error("The body must be application/json."),
    "503": _error("The system of record is unreachable; nothing was changed."),
}


def _post(
    summary: str, request_schema: dict[str, Any], ok: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": [{"session": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request_schema}},
            },
            "responses": {"200": {**ok, "headers": _NO_STORE}, **_WRITE_ERRORS, **extra},
        }
    }


def _get(
    summary: str, ok: dict[str, Any], *, params: list[Any] | None = None, **extra: Any
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {**ok, "headers": _NO_STORE}, **extra},
    }
    if params:
        op["parameters"] = params
    return {"get": op}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


@lru_cache(maxsize=8)
def _document(prefix: str) -> dict[str, Any]:
    paths = {
        "/status": _get(
            "Current maintenance status (public view; administrators get the admin view).",
            _json(_ref("Status"), "The status."),
        ),
        "/blocked-operations": _get(
            "Operation types refused right now, with their messages.",
            _json(_ref("BlockedOperations"), "Blocked operations."),
        ),
        "/message": _get(
            "The user-facing message for an operation type.",
            _json(_ref("Message"), "The message."),
            params=[_query("operation", _OP, "Operation type (omit for the general message).")],
            **{"400": _error("Unknown operation type.")},
        ),
        "/stream": {
            "get": {
                "summary": "Server-Sent Events: one `status` event (id = version) per change.",
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
                        "description": "Resume: the current status is sent only if newer.",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "An event stream (heartbeat comments in between).",
                        "headers": _NO_STORE,
                        "content": {"text/event-stream": {"schema": _ref("StatusEvent")}},
                    },
                    "400": _error("`Last-Event-ID` is not a status version."),
                    "503": {
                        **_json(
                            _ref("StreamUnavailable"),
                            "This process serves as many streams as it can afford (none on "
                            "a server running one request at a time): poll `status_url` "
                            "after `Retry-After`.",
                        ),
                        "headers": {
                            **_NO_STORE,
                            "Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}},
                        },
                    },
                },
            }
        },
        "/openapi.json": _get(
            "This document.", _json({"type": "object"}, "The OpenAPI 3.1 document.")
        ),
        "/enable": _post(
            "Enable maintenance (or change it while on). Administrators only.",
            _ref("EnableRequest"),
            _json(_ref("ActivationResult"), "Enabled; `fenced` says every node applied it."),
            **{"409": _error("The state changed since `expected_version`.")},
        ),
        "/disable": _post(
            "Disable maintenance (requeueing deferred jobs unless told not to). Admins only.",
            _ref("DisableRequest"),
            _json(_ref("ActivationResult"), "Disabled."),
            **{"409": _error("Maintenance is not active, or the state moved on.")},
        ),
        "/history": _get(
            "The event log, newest first. Administrators only.",
            _json(
                {
                    "type": "object",
                    "required": ["events", "total", "offset", "limit"],
                    "properties": {
                        "events": {"type": "array", "items": _ref("Event")},
                        "total": {"type": "integer", "minimum": 0},
                        "offset": {"type": "integer", "minimum": 0},
                        "limit": {"type": "integer", "minimum": 1},
                    },
                },
                "One page of events and `total`, how many match the filters in all.",
            ),
            params=[
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": bodies.MAX_HISTORY},
                    "At most.",
                ),
                _query(
                    "kind",
                    {"type": "string", "enum": list(EVENT_KINDS)},
                    "Only events of this kind (repeatable).",
                ),
                _query(
                    "before_id",
                    {"type": "integer", "minimum": 0, "maximum": bodies.MAX_EVENT_ID},
                    "Page: ids below this.",
                ),
                _query(
                    "offset",
                    {"type": "integer", "minimum": 0, "maximum": bodies.MAX_EVENT_ID},
                    "Page: skip this many of the matching events.",
                ),
                _query("activation_id", _STR, "Only events of one activation."),
            ],
            **_ADMIN_ERRORS,
            **{"400": _error("Bad query parameter.")},
        ),
        "/sessions": _get(
            "Logged-in non-admin sessions seen recently: count and sample. Admins only.",
            _json(_ref("ActiveSessions"), "Active sessions."),
            params=[
                _query(
                    "sample",
                    {"type": "integer", "minimum": 0, "maximum": bodies.MAX_SAMPLE},
                    "Rows.",
                )
            ],
            **_ADMIN_ERRORS,
            **{"400": _error("Bad query parameter.")},
        ),
        "/sessions/invalidate": _post(
            "Log every non-admin out now. Administrators only.",
            bodies.schema(bodies.INVALIDATE),
            _json(_ref("Invalidation"), "Invalidated."),
        ),
        "/login-block": _post(
            "Refuse (or allow again) non-admin logins. Administrators only.",
            bodies.schema(bodies.LOGIN_BLOCK, ("blocked",)),
            _json(
                {
                    "type": "object",
                    "required": ["login_blocked", "version"],
                    "properties": {"login_blocked": _BOOL, "version": _INT},
                },
                "The new login state.",
            ),
        ),
        "/bypass-link": _post(
            "A one-time link that lets one browser through maintenance. Admins only.",
            bodies.schema(bodies.BYPASS_LINK),
            _json(
                {
                    "type": "object",
                    "required": ["url", "expires_in"],
                    "properties": {"url": _STR, "expires_in": _INT},
                },
                "The link.",
            ),
        ),
        "/emergency": {
            **_get(
                "Where the current emergency stands: phase, counts, running jobs. Admins only.",
                _json(_ref("EmergencyProgress"), "Progress."),
                params=None,
                **_ADMIN_ERRORS,
            ),
            **_post(
                "Declare an emergency: everything blocked but admin work, non-admins logged "
                "out, running jobs asked to stop, then SIGTERMed, then SIGKILLed. Admins only.",
                _ref("EmergencyRequest"),
                _json(_ref("EmergencyActivation"), "Declared; `fenced` says every node has it."),
                **{"409": _error("An emergency is already active, or the state moved on.")},
            ),
        },
        "/emergency/critical-only": _post(
            "During an emergency: only administrators flagged critical get through from now "
            "on (ordinary admins' sessions end too). Admins only.",
            _ref("CriticalOnlyRequest"),
            _json(_ref("ActivationResult"), "Narrowed; `fenced` says every node has it."),
            **{"409": _error("No emergency is active, or the state moved on.")},
        ),
        "/emergency/deactivate": _post(
            "Lift the emergency after its checks; requeue what was stopped. Admins only.",
            _ref("EmergencyOffRequest"),
            _json(_ref("EmergencyDeactivation"), "Lifted."),
            **{
                "409": _error(
                    "No emergency is active, or a check failed (`problems`; `force` overrides)."
                )
            },
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Maintenance status API",
            "version": "1",
            "description": (
                "Status, blocked operations, messages and a live stream for everyone; "
                "controls for administrators. Any other request refused because of "
                "maintenance is answered 503 with a `Maintenance503` body and `Retry-After`."
            ),
        },
        "servers": [{"url": prefix or "/"}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "session",
                    "description": "The app's login session (Flask-Login or a session role).",
                }
            },
        },
    }


@lru_cache(maxsize=8)
def _in_vocabulary(prefix: str, operations: OperationRegistry) -> dict[str, Any]:
    return _retarget(_document(prefix), operations.names(), operations.blockable())


def _retarget(node: Any, names: list[str], blockable: list[str]) -> Any:
    """``node`` with the seed's operation enums replaced by an app's."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "enum" and value == _OPS:
                out[key] = list(names)
            elif key == "enum" and value == _BLOCKABLE:
                out[key] = list(blockable)
            else:
                out[key] = _retarget(value, names, blockable)
        return out
    if isinstance(node, list):
        return [_retarget(v, names, blockable) for v in node]
    return node


def build_openapi(
    prefix: str = "/api/maintenance", operations: OperationRegistry = SEED_REGISTRY
) -> dict[str, Any]:
    """The document for an API mounted at ``prefix``; operation enums list ``operations``
    (the app's vocabulary)."""
    if operations is SEED_REGISTRY:
        return _document(prefix)
    return _in_vocabulary(prefix, operations)
