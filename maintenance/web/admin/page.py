"""The settings the panel's scripts read from the page (a JSON ``<script>`` block): URLs
of the JSON API and the panel's own data, timings, labels, the limits the forms are
checked against (from the core's enable-request model) and the first snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import url_for

from ...domain.enable_request import limits
from ...domain.policy import DEFAULT_BLOCKED, ordered
from .forms import BLOCKABLE, UNBLOCKABLE

if TYPE_CHECKING:
    from ..config import WebConfig
    from .config import AdminConfig


def page_config(web: WebConfig, admin: AdminConfig, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Everything ``admin.js`` needs; rendered with ``tojson`` (safe inside ``<script>``)."""
    api = web.api_prefix
    return {
        "api": {
            "enabled": web.api_enabled,
            "stream": f"{api}/stream",
            "enable": f"{api}/enable",
            "invalidate_sessions": f"{api}/sessions/invalidate",
            # The API's own emergency endpoint (``POST <prefix>/emergency``).
            "emergency": {"url": f"{api}/emergency", "dedicated": True},
        },
        "urls": {
            "data": url_for(".data"),
            "check": url_for(".check"),
            "report": url_for(".report", report_id="REPORT_ID"),
        },
        "poll_ms": round(admin.poll_seconds * 1000),
        "emergency_phrase": admin.emergency_phrase,
        "limits": limits(),
        "mode_defaults": {
            mode.value: [op.value for op in ordered(ops)] for mode, ops in DEFAULT_BLOCKED.items()
        },
        # A list as well as the labels: the JSON encoder sorts object keys.
        "operations": [op.value for op, _label in (*BLOCKABLE, *UNBLOCKABLE)],
        "labels": {op.value: label for op, label in (*BLOCKABLE, *UNBLOCKABLE)},
        "snapshot": snapshot,
    }
