"""The control plane's own signals, declared once (blinker), one line each.

Receivers are called in the process that emits the event. A failing receiver
is logged by the emitter and never stops the operation that emitted it.
"""

from __future__ import annotations

from blinker import NamedSignal, Namespace

_signals = Namespace()

#: Maintenance was switched on (or changed while on). kwargs: status, actor.
maintenance_enabled = _signals.signal("maintenance-enabled")
#: Maintenance was switched off. kwargs: status, actor, requeue (bool).
maintenance_disabled = _signals.signal("maintenance-disabled")
#: Any change of the versioned state reached this process. kwargs: status.
status_changed = _signals.signal("status-changed")
#: A request or publish was refused. kwargs: operation, user, channel, would_block.
operation_blocked = _signals.signal("operation-blocked")
#: A worker deferred a queued job instead of starting it. kwargs: job.
job_deferred = _signals.signal("job-deferred")
#: A deferred or terminated job was republished. kwargs: job, new_id.
job_requeued = _signals.signal("job-requeued")
#: An emergency stopped a running job. kwargs: job, outcome.
job_terminated = _signals.signal("job-terminated")
#: The last running job of a blocked type ended. kwargs: activation_id.
drained = _signals.signal("drained")
#: The ``maintenance`` CLI built its service (plugins scope receivers to it). kwargs: service.
cli_service_ready = _signals.signal("cli-service-ready")
#: Non-admin sessions were invalidated. kwargs: count, actor.
sessions_invalidated = _signals.signal("sessions-invalidated")


def emit(signal: NamedSignal, sender: object, **kwargs: object) -> None:
    """Send ``signal``; a receiver that raises is logged, never propagated."""
    import logging

    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            logging.getLogger("maintenance.events").exception(
                "receiver %r of %s failed", receiver, signal.name
            )
