"""The settings the panel's scripts read from the page (a JSON ``<script>`` block): URLs
of the JSON API and the panel's own data, timings, labels, the limits the forms are
checked against (from the core's enable-request model) and the first snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import url_for

from ...domain.enable_request import limits
from ...domain.modes import MaintenanceMode
from ...domain.operations import SEED_REGISTRY, OperationRegistry
from .forms import blockable, unblockable

if TYPE_CHECKING:
    from ..config import WebConfig
    from .config import AdminConfig


def page_config(
    web: WebConfig,
    admin: AdminConfig,
    snapshot: dict[str, Any],
    operations: OperationRegistry = SEED_REGISTRY,
) -> dict[str, Any]:
    """Everything ``admin.js`` needs; rendered with ``tojson`` (safe inside ``<script>``);
    operation names and labels are the app's (``operations``)."""
    shown = (*blockable(operations), *unblockable(operations))
    api = web.api_prefix
    return {
        "api": {
            "enabled": web.api_enabled,
            "stream": f"{api}/stream",
            "enable": f"{api}/enable",
            "invalidate_sessions": f"{api}/sessions/invalidate",
            # The API's own emergency endpoint (``POST <prefix>/emergency``).
            "emergency": {"url": f"{api}/emergency", "dedicated": True},
            "emergency_off": f"{api}/emergency/deactivate",
            "critical_only": f"{api}/emergency/critical-only",
        },
        "urls": {
            "data": url_for(".data"),
            "check": url_for(".check"),
            "history": url_for(".history"),
            "report": url_for(".report", report_id="REPORT_ID"),
        },
        "poll_ms": round(admin.poll_seconds * 1000),
        "emergency_phrase": admin.emergency_phrase,
        "limits": limits(),
        "mode_defaults": {
            mode.value: [op.value for op in operations.ordered(operations.default_blocked(mode))]
            for mode in MaintenanceMode
        },
        # A list as well as the labels: the JSON encoder sorts object keys.
        "operations": [op.value for op, _label in shown],
        "labels": {op.value: label for op, label in shown},
        "snapshot": snapshot,
    }
