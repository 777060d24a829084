"""``install(app)``: the one call that wires maintenance into a Celery app."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from maintenance import EnhancedMaintenanceModeService, Settings
from maintenance import events as maintenance_events
from workers.beat import (
    STATUS_CHECK_OPERATION,
    STATUS_CHECK_TASK,
    status_check,
    status_check_base,
)
from workers.binding import ATTRIBUTE, Binding, binding_of
from workers.requeue import requeue_jobs

from . import canvas, emergency, lifecycle, tracking
from .publish_gate import PublishGate
from .worker_gate import WorkerGateStep

log = logging.getLogger("maintenance.celery")
_install_lock = threading.Lock()
_bindings: weakref.WeakSet[Binding] = weakref.WeakSet()


def install(
    app: Any,
    service: EnhancedMaintenanceModeService | None = None,
    *,
    settings: Settings | None = None,
) -> Binding:
    """Install every maintenance hook on ``app``; idempotent. Returns the binding.

    ``service`` defaults to one built lazily, in each process, for the kind of
    process this turns out to be: from ``settings`` (an app's own, e.g. with its
    operation types) or else ``maintenance.default_service()`` from the
    environment. Wires:

    * the publish gate (``app.send_task`` and group/chain/chord ``apply_async``),
      which also stamps each publish's headers (``signals.stamping``);
    * job tracking (``task_prerun``/``postrun``/``failure``/``revoked``);
    * the worker-side gate (a consumer bootstep) and process lifecycle
      (``worker_init``, ``worker_process_init``, ``worker_shutdown``, ``beat_init``);
    * the ``maintenance.status_check`` task for beat;
    * recovery requeue when this process's service disables maintenance;
    * emergencies: each worker stops its own jobs (``signals.emergency``), and
      ``service.emergency`` is an ``EmergencyMaintenanceHandler`` when a service is given.
    """
    with _install_lock:
        binding = binding_of(app)
        if binding is not None:
            if service is not None and not binding.has_service():
                binding._service = service
                service.declare_hook("publish")
            return binding
        binding = Binding(app, service, settings)
        if service is not None:
            service.declare_hook("publish")  # its node record says the publish gate is here
        setattr(app, ATTRIBUTE, binding)
        binding.gate = PublishGate(binding).attach()
        canvas.gate_canvas_classes()
        tracking.connect()
        lifecycle.connect()
        app.steps["consumer"].add(WorkerGateStep)
        emergency.install(app, binding)
        _register_status_check(app, binding)
        _connect_requeue(binding)
        _bindings.add(binding)
        return binding


def requeues_for(service: Any) -> bool:
    """Whether an installed app in this process requeues when ``service`` disables maintenance."""
    return any(b.uses(service) for b in list(_bindings))


def _register_status_check(app: Any, binding: Binding) -> None:
    def run_status_check(task: Any) -> dict[str, Any]:
        return status_check(binding.service, task.app).to_dict()

    run_status_check.__doc__ = "Maintenance beat check: windows, overdue, reaping, drain, requeue."
    app.task(
        name=STATUS_CHECK_TASK,
        base=status_check_base(app),
        bind=True,
        shared=False,
        ignore_result=True,
        acks_late=False,
        # The control plane's own periodic check: no received/started/succeeded events,
        # and (its base) no task-sent, so Flower's task list shows the app's jobs, not one
        # check every 10 s.
        send_events=False,
        operation_type=STATUS_CHECK_OPERATION,
    )(run_status_check)


def _on_disabled(sender: Any, requeue: bool = True, actor: str | None = None, **_: Any) -> None:
    """``maintenance_disabled``: requeue through the first installed app using ``sender``."""
    if not requeue:
        return
    binding = next((b for b in list(_bindings) if b.uses(sender)), None)
    if binding is None:
        return
    report = requeue_jobs(binding.app, binding.service, actor=actor or "recovery")
    log.info("maintenance: requeue after disable: %s", report.to_dict())


def _connect_requeue(binding: Binding) -> None:
    # One receiver per process (blinker connects a receiver once): a disable requeues once.
    maintenance_events.maintenance_disabled.connect(_on_disabled, weak=False)
    binding.on_disabled = _on_disabled
