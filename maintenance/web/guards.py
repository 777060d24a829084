"""Guards for the admin API: JSON errors, admin-only access, and cross-site request
forgery protection for a JSON API used by the admin UI.

CSRF choice: state-changing endpoints accept only ``application/json`` bodies
(an HTML form or a "simple" cross-origin fetch cannot send one without a CORS
preflight, which this API never grants) and refuse requests whose ``Origin``
(else ``Referer``) is not this site or a configured trusted origin, or that a
browser marks ``Sec-Fetch-Site: cross-site``/``same-site``. Clients that send
none of these headers (curl, scripts) are not browsers and carry no ambient
credentials to forge; they still need admin credentials.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Request, Response

from ..domain.validation import MAX_JSON_BYTES, MAX_JSON_DEPTH, check_json_tree, json_depth
from ..errors import ApiError, ValidationError

if TYPE_CHECKING:
    from ..domain.enable_request import JsonField


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response that is never cached."""
    body = data if isinstance(data, bytes) else json.dumps(data, default=str).encode()
    response = Response(body, status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(exc: ApiError) -> Response:
    """The JSON body of an ``ApiError``."""
    return json_response(exc.body, exc.status)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_same_origin(request: Request, trusted: tuple[str, ...]) -> None:
    """Refuse (403) a state-changing request a browser sent from another site."""
    own = request.host_url.rstrip("/").lower()
    allowed = {own, *(o.lower() for o in trusted)}
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site in ("cross-site", "same-site") and not trusted:
        raise ApiError(403, "csrf", "cross-site requests are not allowed")
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin.lower().rstrip("/") not in allowed:
            raise ApiError(403, "csrf", f"origin {origin!r} is not allowed")
        return
    referer = request.headers.get("Referer")
    if referer and _origin(referer) not in allowed:
        raise ApiError(403, "csrf", "referer is not this site")


def json_body(request: Request, allowed: Mapping[str, JsonField]) -> dict[str, Any]:
    """The request's JSON object, with only ``allowed`` fields of their JSON types.

    ``application/json`` is required (415 otherwise); a body over ``MAX_JSON_BYTES``
    is a 413; malformed JSON or UTF-8, nesting deeper than ``MAX_JSON_DEPTH``, a
    non-finite or out-of-range number, a lone surrogate, a non-object, an unknown
    field or a wrong type is a 400 naming the field.
    """
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    too_large = ApiError(
        413, "payload_too_large", f"the body is larger than {MAX_JSON_BYTES} bytes"
    )
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise too_large
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON_BYTES:
        raise too_large
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "validation_error", "the body is not valid UTF-8") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ApiError(
            400, "validation_error", f"the body is nested deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        data = json.loads(text, parse_constant=_no_constant) if text.strip() else {}
    except (ValueError, RecursionError):
        raise ApiError(400, "validation_error", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "validation_error", "the body must be a JSON object")
    check_json_tree(data)
    for key, value in data.items():
        if key not in allowed:
            raise ApiError(400, "validation_error", f"unknown field {key!r}", field=key)
        types = allowed[key].types
        # JSON Schema integers include 2.0; bool is an int in Python but not in JSON.
        if isinstance(value, float) and int in types and float not in types and value.is_integer():
            data[key] = value = int(value)
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ApiError(400, "validation_error", f"{key} has the wrong type", field=key)
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def validation_error(exc: ValidationError) -> ApiError:
    """A core ``ValidationError`` as a 400."""
    return ApiError(400, "validation_error", str(exc), field=exc.field)
