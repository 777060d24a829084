"""``before_task_publish``: stamp the maintenance facts of a publish into its headers.

This receiver is not the gate. Celery's ``Signal.send`` catches whatever a
receiver raises and only logs it (``celery/utils/dispatch/signal.py``), so a
raise here would let the message through anyway; the gate is the wrapped
``send_task`` (``signals.publish_gate``). The stamps (named in
``workers.headers``) travel with the message and are read by the worker-side gate
and by the job's own sub-publishes.
"""

from __future__ import annotations

from contextvars import ContextVar
from time import time as _now
from typing import Any, NamedTuple

from celery.signals import before_task_publish

from workers.headers import (
    BYPASS,
    BYPASS_CRITICAL,
    CONTINUATION,
    OPERATION,
    PUBLISHED_AT,
    PUBLISHER,
    VERSION,
)


class PublishFacts(NamedTuple):
    """What the gate decided about the publish in progress (set by the gate, read here).

    A tuple: built on every publish, so it must cost next to nothing.
    """

    operation: str
    version: int
    publisher: str
    published_at: float  # unix seconds: a recovery requeues in this order
    continuation: bool = False
    bypass: str | None = None
    bypass_critical: bool = False


#: The facts of the ``send_task`` call in progress in this context, if gated (a
#: ``PublishFacts`` or a plain tuple in the same field order).
current_facts: ContextVar[tuple[Any, ...] | None] = ContextVar(
    "maintenance_publish_facts", default=None
)


def stamp_headers(sender: Any = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Receiver: copy the current publish's facts into the outgoing message headers.

    A publish the gate had nothing to judge (maintenance off) carries only its
    publish time: a recovery requeues deferred jobs in that order. The worker
    resolves the operation type itself when no stamp says it.
    """
    if headers is None:
        return
    facts = current_facts.get()
    if facts is None:
        headers[PUBLISHED_AT] = _now()
        return
    operation, version, publisher, published_at, continuation, bypass, critical = facts
    headers[OPERATION] = operation
    headers[VERSION] = version
    headers[PUBLISHER] = publisher
    headers[PUBLISHED_AT] = published_at
    if continuation:
        headers[CONTINUATION] = True
    if bypass is not None:
        headers[BYPASS] = bypass
        if critical:
            headers[BYPASS_CRITICAL] = True


def connect() -> None:
    """Connect the receiver once per process (idempotent)."""
    before_task_publish.connect(stamp_headers, weak=False, dispatch_uid="maintenance-stamp")
