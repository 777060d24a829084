"""Celery signal hooks for maintenance mode: publish gate, job tracking, worker lifecycle,
emergency wiring -- and the commands that publish through an app with them installed.

One call wires everything on an app (importing ``celeryconfig`` does it too)::

    import signals
    signals.install(app)

This package connects Celery signals and bootsteps to the worker-side operations
in ``workers`` (which never imports it). See ``docs/celery.md``.
"""

from workers.binding import Binding, binding_of
from workers.internal_publish import internal_publish
from workers.operations import resolve_operation

from . import census
from .errors import EXIT_REFUSED, PublishRefused
from .install import install
from .publish_gate import PublishGate

census.connect()  # the rehearsal report's broker census

__all__ = [
    "EXIT_REFUSED",
    "Binding",
    "PublishGate",
    "PublishRefused",
    "binding_of",
    "install",
    "internal_publish",
    "resolve_operation",
]
