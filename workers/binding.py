"""Which maintenance service a Celery app talks to, resolved lazily per process.

``signals.install(app)`` attaches a ``Binding`` to the app; the hooks and the
worker-side operations find it with ``binding_of(app)``. The service is built on
first use so the process can say what it is first: a worker main process
registers as a ``worker`` node, beat as ``beat``, anything else (web,
``celery call``) as ``app``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from maintenance import EnhancedMaintenanceModeService, Settings, default_service, factory

if TYPE_CHECKING:
    from celery import Celery

ATTRIBUTE = "_maintenance_binding"
RETRY_SECONDS = 5.0
log = logging.getLogger("maintenance.celery")


class CanvasGate(Protocol):
    """What a canvas publish asks of the app's publish gate (``signals.publish_gate``)."""

    def check_canvas(self, signature: Any, call_options: dict[str, Any]) -> None:
        """Judge every member of a canvas before its first publish (raises if refused)."""
        ...

    def internal(self, name: str, options: dict[str, Any], task: Any = None) -> None:
        """Stamp a control-plane publish made without ``send_task`` (the recovery requeue)
        into ``options["headers"]``."""
        ...


class Binding:
    """The link between one Celery app and the service its hooks consult."""

    def __init__(
        self,
        app: Celery,
        service: EnhancedMaintenanceModeService | None,
        settings: Settings | None = None,
    ) -> None:
        self.app = app
        self._service = service
        #: Settings to build this app's own service from (None: the process default).
        self.settings = settings
        self.kind = "app"
        self._lock = threading.Lock()
        #: Node id and pid of this worker's main process (inherited by its pool children).
        self.worker_node_id: str | None = None
        self.worker_pid: int | None = None
        #: Celery node name of this worker (``w1@host``), once known.
        self.hostname: str | None = None
        #: The publish gate wrapping ``app.send_task`` (set by ``install``).
        self.gate: CanvasGate | None = None
        #: The ``maintenance_disabled`` receiver requeueing for this app (set by ``install``).
        self.on_disabled: Any = None
        self._retry_at = 0.0

    @property
    def service(self) -> EnhancedMaintenanceModeService:
        """The service, built on first use (from ``settings``, else the environment's
        process default) unless one was given."""
        service = self._service
        if service is None:
            with self._lock:
                if self._service is None:
                    if self.settings is not None:
                        self._service = factory.build_service(self.settings, kind=self.kind)
                    else:
                        self._service = default_service(kind=self.kind)
                    self._service.declare_hook("publish")
                    atexit.register(_close_quietly, self._service)
                service = self._service
        return service

    def try_service(self) -> EnhancedMaintenanceModeService | None:
        """The service, or None while it cannot be built (SQL unreachable at start).

        Without a service there is nothing to judge by: publishes and jobs go on
        ungated (logged), and building is retried at most every ``RETRY_SECONDS``.
        """
        if self._service is not None:
            return self._service
        now = time.monotonic()
        if now < self._retry_at:
            return None
        try:
            return self.service
        except Exception as exc:
            self._retry_at = now + RETRY_SECONDS
            log.error("maintenance: control plane unavailable, Celery hooks inactive: %s", exc)
            return None

    def has_service(self) -> bool:
        """Whether the service exists already (nothing is built by asking)."""
        return self._service is not None

    def uses(self, service: EnhancedMaintenanceModeService) -> bool:
        """Whether ``service`` is (or, once built, will be) this binding's service."""
        if self._service is not None:
            return self._service is service
        # Not built yet: it will be the process default, if that is ``service``.
        return self.settings is None and service is factory._default


def _close_quietly(service: EnhancedMaintenanceModeService) -> None:
    # A short-lived publisher (``celery call``) leaves the node registry on exit.
    with contextlib.suppress(Exception):  # interpreter shutdown: best effort only
        service.close()


def binding_of(app: Any) -> Binding | None:
    """The binding ``install`` attached to ``app``, or None."""
    return getattr(app, ATTRIBUTE, None)
