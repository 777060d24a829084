"""The ``maintenance_api`` blueprint: the public and the control blueprints under one
prefix, with every error answered in JSON, Flask's routing ones (404/405) included."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response

from ...errors import ApiError, ConflictError, NotAuthorized, StoreUnavailable, ValidationError
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
    return bp
