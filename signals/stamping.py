"""Stamping: the maintenance facts of a publish, written into its headers by the gate.

The publish gate (``signals.publish_gate``) passes them through ``send_task``'s own
``headers`` option (a publish it has nothing to judge gets only ``PUBLISHED_NS``,
stamped inline in its wrapper), which Celery merges into the message headers
(``amqp.send_task_message``). No ``before_task_publish`` receiver is connected:
Celery's ``Signal.send`` catches whatever a receiver raises and only logs it, so a
receiver could never have been the gate, and dispatching to one costs every publish
of the process (``bench/publish_gate.py``). The stamps (named in ``workers.headers``)
travel with the message and are read by the worker-side gate and by the job's own
sub-publishes.

An app in the same process without the gate stamps nothing; a rehearsal tells it
from a process without hooks by the registered node its ``origin`` names
(``maintenance.rehearsal_fleet``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from workers.headers import (
    BYPASS,
    BYPASS_CRITICAL,
    CONTINUATION,
    OPERATION,
    PUBLISHED_NS,
    PUBLISHER,
    VERSION,
)


class PublishFacts(NamedTuple):
    """What the gate decided about a judged publish."""

    operation: str
    version: int
    publisher: str
    published_ns: int  # unix nanoseconds: a recovery requeues in this order
    continuation: bool = False
    bypass: str | None = None
    bypass_critical: bool = False


def stamp(options: dict[str, Any], facts: PublishFacts) -> None:
    """Stamp a judged publish's facts into ``options["headers"]`` (a copy)."""
    headers = dict(options.get("headers") or ())
    headers[OPERATION] = facts.operation
    headers[VERSION] = facts.version
    headers[PUBLISHER] = facts.publisher
    headers[PUBLISHED_NS] = facts.published_ns
    if facts.continuation:
        headers[CONTINUATION] = True
    if facts.bypass is not None:
        headers[BYPASS] = facts.bypass
        if facts.bypass_critical:
            headers[BYPASS_CRITICAL] = True
    options["headers"] = headers
