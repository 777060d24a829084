"""Green pools (gevent): repair the one blocking call Celery's late monkey-patching leaves.

``celery worker -P gevent`` patches the standard library first thing, but
``gevent.monkey.patch_all`` patches ``thread`` before ``select`` and, in between,
looks through the existing objects; touching Celery's lazy module then imports
kombu, and ``kombu.utils.eventio`` keeps the *unpatched* ``select.select``. The
Redis transport then blocks the whole process in ``select`` for up to a second
per loop cycle (AMQP is unaffected: its sockets are patched), and every other
greenlet -- the status cache, heartbeats, the emergency ladder -- gets one turn
per cycle: a worker misses its node TTL and fenced activations wait for it.
"""

from __future__ import annotations

import logging
import select
import sys

log = logging.getLogger("maintenance.celery")


def repair_kombu_select() -> bool:
    """Point kombu's poller at gevent's ``select`` when gevent patched it and kombu kept
    the original; True if it did. Nothing to do anywhere else."""
    monkey = sys.modules.get("gevent.monkey")
    eventio = sys.modules.get("kombu.utils.eventio")
    if monkey is None or eventio is None or not monkey.is_module_patched("select"):
        return False
    if getattr(eventio, "_selectf", select.select) is select.select:
        return False
    eventio._selectf = select.select  # type: ignore[attr-defined]
    log.info("maintenance: kombu's select replaced by gevent's (patched after kombu loaded)")
    return True
