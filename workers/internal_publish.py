"""Publishes of the control plane itself (the recovery requeue), which the publish gate
lets through: a context any code path may open, and the gate reads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: Why the publish in progress is the control plane's own (None: it is not). The gate
#: reads it on every publish, so it is the variable itself, not a function around it.
INTERNAL_PUBLISH: ContextVar[str | None] = ContextVar("maintenance_internal_publish", default=None)


@contextmanager
def internal_publish(reason: str) -> Iterator[None]:
    """Publish without the gate: only for the control plane's own republishing."""
    token = INTERNAL_PUBLISH.set(reason)
    try:
        yield
    finally:
        INTERNAL_PUBLISH.reset(token)
