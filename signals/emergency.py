"""Wiring the emergency into a Celery app: the worker's termination bootstep, the job-side
``task_postrun`` receiver, stop-aware tasks in workers (``worker_init``), and the emergency
controller of a given service."""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.signals import task_postrun, worker_init

from workers.binding import Binding, binding_of
from workers.emergency import abort, stopped
from workers.emergency.handler import EmergencyMaintenanceHandler
from workers.emergency.terminator import WorkerTerminator

from .worker_gate import WorkerGateStep

log = logging.getLogger("maintenance.emergency")
ATTRIBUTE = "_maintenance_terminator"


class EmergencyStep(bootsteps.StartStopStep):
    """Consumer bootstep: the worker main process follows emergencies and stops its jobs."""

    label = "Maintenance emergency"
    # After the gate step, which makes this process a registered worker node.
    requires = (WorkerGateStep,)

    def start(self, c: Any) -> None:
        """Follow the status with a ``WorkerTerminator`` (once per consumer)."""
        binding = binding_of(c.app)
        service = binding.try_service() if binding is not None else None
        if binding is None or service is None or getattr(c, ATTRIBUTE, None) is not None:
            return
        node = binding.worker_node_id or service.cache.node_id
        setattr(c, ATTRIBUTE, WorkerTerminator(service, c, node).start())

    def shutdown(self, c: Any) -> None:
        """Stop following."""
        terminator = getattr(c, ATTRIBUTE, None)
        if terminator is not None:
            terminator.stop()
            setattr(c, ATTRIBUTE, None)


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    """Worker main process, tasks imported, pool not yet started (its children inherit
    the wrapped tasks; Celery builds each task's tracer after this): jobs that maintenance
    stops end ``STOPPED`` (``workers.emergency.stopped``)."""
    app = getattr(sender, "app", None)
    if app is not None and binding_of(app) is not None:
        stopped.wrap_tasks(app)


def install(app: Any, binding: Binding) -> None:
    """Add the bootstep and the pool-child receiver (once per process); with a given service,
    make the Celery-side ``EmergencyMaintenanceHandler`` its emergency controller."""
    app.steps["consumer"].add(EmergencyStep)
    task_postrun.connect(abort.on_postrun, weak=False, dispatch_uid="maintenance-emergency-postrun")
    worker_init.connect(_on_worker_init, weak=False, dispatch_uid="maintenance-emergency-init")
    if binding.has_service():
        EmergencyMaintenanceHandler(binding.service, app)
