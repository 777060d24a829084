"""The rehearsal's broker census: workers that answer the broker but never registered.

A worker started without ``signals.install`` (a plain Celery app on the same broker)
consumes and runs whatever reaches its queues and never joins the node registry. The
rehearsal report asks the broker who is there (one ``inspect().stats()`` broadcast:
every worker answers with its node name and the tasks it ran since it started) and
names each answering worker that no registered worker node claims, with the tasks of a
would-be-blocked type it ran. Limits: a worker busy past the timeout does not answer
(nor is it named); its task totals count since that worker started, not since the
rehearsal did.

The census runs from a process with a Celery app bound to the report's service: a web
or worker process that called ``install(app, service)``, or the ``maintenance`` CLI
(which loads ``$CELERY_APP``, else the ``celeryconfig`` app, only when asked).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from maintenance import EnhancedMaintenanceModeService
from maintenance import events as maintenance_events
from maintenance.rehearsal_fleet import finding, register_probe
from workers.binding import binding_of
from workers.operations import registered_task, resolve_operation

#: Seconds the census waits for workers to answer; and longer for the broker itself.
TIMEOUT = 1.0
GRACE = 4.0
_cli_services: weakref.WeakSet[EnhancedMaintenanceModeService] = weakref.WeakSet()


def _app_for(service: EnhancedMaintenanceModeService) -> Any:
    from .install import _bindings

    for binding in list(_bindings):
        if binding.has_service() and binding.uses(service):
            return binding.app
    for binding in list(_bindings):
        if binding.uses(service):
            return binding.app
    if service in _cli_services:
        from .appload import load_app

        app = load_app(None, service)
        loaded = binding_of(app)
        return app if loaded is not None and loaded.uses(service) else None
    return None


def _ask_broker(app: Any) -> dict[str, Any]:
    """``inspect().stats()`` replies, bounded: a broker that cannot be reached must not hold
    up the report (or the disable that stores it) for the client's connection retries."""
    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            outcome["replies"] = app.control.inspect(timeout=TIMEOUT).stats() or {}
        except Exception as exc:  # reported as the probe's error
            outcome["error"] = exc

    thread = threading.Thread(target=ask, name="maintenance-census", daemon=True)
    thread.start()
    thread.join(TIMEOUT + GRACE)
    if "error" in outcome:
        raise outcome["error"]
    if "replies" not in outcome:
        raise TimeoutError(f"the broker did not answer within {TIMEOUT + GRACE:.0f} s")
    return dict(outcome["replies"])


def census(
    service: EnhancedMaintenanceModeService, would_block: frozenset[str]
) -> list[dict[str, Any]]:
    """Workers answering the broker without having registered: each a ``finding``."""
    app = _app_for(service)
    if app is None:
        return []
    replies = _ask_broker(app)
    registered = {
        node.info.get("hostname") for node in service.nodes().values() if node.kind == "worker"
    }
    out = []
    for hostname, stats in sorted(replies.items()):
        if hostname in registered:
            continue
        totals = (stats or {}).get("total") or {}
        blocked = {
            name: int(n)
            for name, n in totals.items()
            if resolve_operation(name, service.classifier, task=registered_task(app, name)).value
            in would_block
        }
        ran = sum(blocked.values())
        pid = (stats or {}).get("pid")
        out.append(
            finding(
                hostname,
                "worker",
                "missing hook",
                f"answers the broker (pid {pid}) but never registered: no maintenance hooks; "
                + (
                    f"ran {ran} task(s) of a blocked type since it started ("
                    + ", ".join(f"{name} {n}" for name, n in sorted(blocked.items()))
                    + ")"
                    if ran
                    else "ran no task of a blocked type since it started"
                ),
                blocked_traffic=ran,
                fails=bool(ran),
            )
        )
    return out


def _remember_cli_service(
    sender: Any, service: EnhancedMaintenanceModeService | None = None, **_: Any
) -> None:
    if service is not None:
        _cli_services.add(service)


def connect() -> None:
    """Register the census with the rehearsal report (idempotent)."""
    register_probe(census)
    maintenance_events.cli_service_ready.connect(_remember_cli_service, weak=False)
