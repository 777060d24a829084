"""Celery signal hooks for maintenance mode: publish gate, job tracking, worker lifecycle.

One call wires everything on an app (importing ``celeryconfig`` does it too)::

    import signals
    signals.install(app)

See ``docs/celery.md``.
"""

from .binding import Binding, binding_of
from .errors import EXIT_REFUSED, PublishRefused
from .install import install
from .operations import resolve_operation
from .publish_gate import PublishGate, internal_publish

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
