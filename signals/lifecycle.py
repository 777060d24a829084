"""Process lifecycle: what each kind of Celery process is in the node registry.

* worker main process -- a registered node of kind ``worker`` (fenced
  activations wait for it; it is the backstop gate), started in
  ``worker_init`` before the pool forks, plus the housekeeping monitor;
* pool children -- followers (``cache.register = False``): they read the
  status but fenced activations do not wait for them (``worker_process_init``);
* beat -- a node of kind ``beat`` (``beat_init``).

``worker_ready`` is not used: it does not fire for embedded test workers.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import current_app
from celery.signals import beat_init, worker_init, worker_process_init, worker_shutdown

from workers.binding import Binding, binding_of
from workers.green import repair_kombu_select
from workers.monitor import WorkerMonitor

from . import settings_check

log = logging.getLogger("maintenance.celery")
_monitors: dict[int, WorkerMonitor] = {}


def ensure_worker_started(binding: Binding, hostname: str | None, *, monitor: bool = True) -> None:
    """Make this worker main process a registered ``worker`` node (idempotent).

    The housekeeping monitor thread starts only once the pool has forked
    (from the consumer bootstep): a fork copies no threads, and a thread
    holding a lock at that moment would leave the children a locked copy.
    """
    binding.kind = "worker"
    if hostname:
        binding.hostname = hostname
        binding.service.cache.info.setdefault("hostname", hostname)
    service = binding.service
    # Pool children follow the status without registering (worker_process_init), even
    # when the worker imported a Flask app that asked web nodes to restart after fork.
    service.cache.start_after_fork = False
    service.start()
    binding.worker_node_id = service.cache.node_id
    binding.worker_pid = os.getpid()
    key = id(binding)
    if monitor and key not in _monitors:
        _monitors[key] = WorkerMonitor(service, hostname or "worker").start()


def on_worker_init(sender: Any = None, **_: Any) -> None:
    """Worker main process, before the pool exists: warn about settings maintenance relies
    on, then register as a node."""
    repair_kombu_select()
    binding = binding_of(getattr(sender, "app", None))
    if binding is not None:
        settings_check.warn_missing(binding.app)
        ensure_worker_started(binding, getattr(sender, "hostname", None), monitor=False)


def on_worker_process_init(sender: Any = None, **_: Any) -> None:
    """Pool child after fork: follow the status, do not hold up fenced activations."""
    binding = binding_of(current_app._get_current_object())
    if binding is None:
        return
    if binding.worker_pid == os.getpid():
        # The solo pool sends this signal in the worker main process itself
        # (``concurrency/solo.py``): that process stays a registered node.
        return
    service = binding.service
    service.cache.register = False
    service.start()


def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    """Worker main process going down: leave the node registry cleanly."""
    binding = binding_of(getattr(sender, "app", None))
    if binding is None or not binding.has_service():
        return
    monitor = _monitors.pop(id(binding), None)
    if monitor is not None:
        monitor.stop()
    binding.service.close()


def on_beat_init(sender: Any = None, **_: Any) -> None:
    """Beat: a registered ``beat`` node, so its scheduled publishes see maintenance at once."""
    binding = binding_of(getattr(sender, "app", None))
    if binding is None:
        return
    binding.kind = "beat"
    binding.service.start()
    binding.service.notifier.start_delivery("beat")


def connect() -> None:
    """Connect the receivers once per process (idempotent)."""
    worker_init.connect(on_worker_init, weak=False, dispatch_uid="maintenance-worker-init")
    worker_process_init.connect(
        on_worker_process_init, weak=False, dispatch_uid="maintenance-worker-process-init"
    )
    worker_shutdown.connect(
        on_worker_shutdown, weak=False, dispatch_uid="maintenance-worker-shutdown"
    )
    beat_init.connect(on_beat_init, weak=False, dispatch_uid="maintenance-beat-init")
