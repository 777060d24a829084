"""The admin panel and the JSON API inside a host app that has CSRF protection of its own.

Both protect themselves: the panel's forms carry a signed per-session token and are
checked for their origin (``admin.csrf``); the API takes only ``application/json``
bodies and checks the origin (``guards``). A host's app-wide check running first would
refuse them with its own answer — the panel's token is not the host's, and a non-JSON
write to the API would get the host's HTML 400 instead of the API's 415 JSON. So:

* Flask-WTF's ``CSRFProtect`` is told to leave their blueprints alone, whether it was set
  up before this extension (at once) or after it (on the first request, before its own
  check runs: request hooks run in the order they were added);
* a host's own app-wide check calls ``protects_itself()`` and skips those requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Request, request

#: Blueprints (and their nested blueprints) that do their own CSRF protection.
SELF_PROTECTED: set[str] = set()
_HOOK_KEY = "maintenance_host_csrf"


def protects_itself(req: Request | None = None) -> bool:
    """Whether ``req`` (default: the current request) goes to the maintenance panel or API,
    which check their own CSRF: a host's app-wide CSRF check should skip it."""
    names = (req or request).blueprints
    return any(name in SELF_PROTECTED for name in names)


def leave_to_itself(app: Flask, blueprint: str) -> None:
    """Mark ``blueprint`` (registered on ``app``) as protecting itself, and tell the host's
    Flask-WTF ``CSRFProtect`` so, now or once it is set up."""
    SELF_PROTECTED.add(blueprint)
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        _exempt(app, csrf)
    elif _HOOK_KEY not in app.extensions:
        app.extensions[_HOOK_KEY] = True
        app.before_request(_late_exempt(app))


def _exempt(app: Flask, csrf: Any) -> None:
    exempt = getattr(csrf, "exempt", None)
    if exempt is None:
        return
    for name, bp in list(app.blueprints.items()):
        if name.split(".")[0] in SELF_PROTECTED:
            exempt(bp)


def _late_exempt(app: Flask) -> Callable[[], None]:
    """A request hook that exempts the blueprints from a ``CSRFProtect`` set up after this
    extension, then removes itself (one look-up on the first request only)."""

    def hook() -> None:
        csrf = app.extensions.get("csrf")
        if csrf is not None:
            _exempt(app, csrf)
        # A new list: Flask is iterating the current one.
        funcs = app.before_request_funcs.get(None, [])
        app.before_request_funcs[None] = [f for f in funcs if f is not hook]

    return hook
