"""The ``maintenance_api`` blueprint: the public and the control blueprints under one
prefix, with every error answered in JSON, Flask's routing ones (404/405) included."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
from flask import Blueprint, Response
from sqlalchemy.exc import SQLAlchemyError

from ...errors import (
    ApiError,
    ConflictError,
    NotAuthorized,
    StoreMismatch,
    StoreUnavailable,
    ValidationError,
)
from ...redisconn import describe_redis_error
from ..guards import error_response, json_response, validation_error
from . import control, public

if TYPE_CHECKING:
    from .control import ControlAPI
    from .public import MaintenanceStatusAPI

_EVERY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def api_blueprint(
    name: str, public_api: MaintenanceStatusAPI, control_api: ControlAPI
) -> Blueprint:
    """``name`` holding ``name.public`` and ``name.control``; mount it under the API prefix."""
    bp = Blueprint(name, __name__)
    bp.register_blueprint(public_api.blueprint("public"))
    bp.register_blueprint(control_api.blueprint("control"))
    allowed: dict[str, set[str]] = {}
    for rule, _endpoint, _view, methods in (*public.ROUTES, *control.ROUTES):
        allowed.setdefault(rule, set()).update(methods)

    def unknown(rest: str = "") -> Response:
        # Werkzeug prefers a rule that matches path *and* method, so this catch-all
        # answers unknown paths and wrong methods under the prefix in JSON, as every
        # other error of this API (Flask's own 404/405 pages are HTML).
        methods = sorted(allowed.get(f"/{rest}", ()))
        if methods:
            body = {
                "error": "method_not_allowed",
                "message": f"use {', '.join(methods)}",
                "field": None,
            }
            return json_response(body, 405, {"Allow": ", ".join(methods)})
        raise ApiError(404, "not_found", f"no such endpoint: /{rest}")

    bp.add_url_rule("/", "unknown_root", unknown, methods=_EVERY_METHOD)
    bp.add_url_rule("/<path:rest>", "unknown", unknown, methods=_EVERY_METHOD)
    # Handlers of the parent blueprint apply to the nested ones too.
    bp.register_error_handler(ApiError, error_response)
    bp.register_error_handler(ValidationError, lambda e: error_response(validation_error(e)))
    bp.register_error_handler(
        ConflictError,
        lambda e: error_response(
            ApiError(409, "conflict", str(e), current_version=e.current_version)
        ),
    )
    bp.register_error_handler(
        NotAuthorized, lambda e: error_response(ApiError(403, "forbidden", str(e)))
    )
    bp.register_error_handler(
        StoreUnavailable, lambda e: error_response(ApiError(503, "unavailable", str(e)))
    )
    bp.register_error_handler(
        StoreMismatch, lambda e: error_response(ApiError(503, "store_mismatch", str(e)))
    )
    # A store failing where no command said what it cost: nothing was committed by the
    # view (commands turn failures after a commit into their outcome), so one 503.
    bp.register_error_handler(redis.RedisError, _redis_down)
    bp.register_error_handler(OSError, _redis_down)
    bp.register_error_handler(SQLAlchemyError, _sql_down)
    return bp


def _redis_down(exc: BaseException) -> Response:
    message = f"Redis unavailable: {describe_redis_error(exc)}"
    return error_response(ApiError(503, "unavailable", message))


def _sql_down(exc: BaseException) -> Response:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    message = f"SQL store unavailable: {text[0][:300] if text else type(exc).__name__}"
    return error_response(ApiError(503, "unavailable", message))
