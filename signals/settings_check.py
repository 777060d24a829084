"""The Celery settings the maintenance hooks rely on, checked when a worker starts.

An app that only calls ``signals.install(app)`` (no ``celeryconfig``) keeps Celery's
defaults, several of which quietly break a promise the control plane makes. Each
setting that is off gets one warning naming what breaks without it (docs/celery.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("maintenance.celery")


@dataclass(frozen=True)
class Requirement:
    """``setting`` should satisfy ``ok``; ``wanted`` says how, ``breaks`` why."""

    setting: str
    wanted: str
    breaks: str
    ok: Callable[[Any], bool]


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "task_acks_late",
        "True",
        "a job cut off by a warm shutdown, an emergency stop or a crash is acknowledged "
        "already and lost instead of coming back (no graceful drain, no emergency requeue)",
        lambda v: v is True,
    ),
    Requirement(
        "task_reject_on_worker_lost",
        "True",
        "a job whose pool process is killed (emergency stop, OOM) is marked failed instead "
        "of being redelivered",
        lambda v: v is True,
    ),
)


def missing(conf: Any) -> list[Requirement]:
    """The requirements ``conf`` (a Celery app's ``conf``) does not meet."""
    out = []
    for req in REQUIREMENTS:
        try:
            value = conf.get(req.setting) if hasattr(conf, "get") else getattr(conf, req.setting)
        except Exception:  # an unreadable setting counts as unset
            value = None
        if not req.ok(value):
            out.append(req)
    return out


def warn_missing(app: Any) -> list[Requirement]:
    """Log one warning per requirement ``app`` does not meet; returns them."""
    found = missing(app.conf)
    for req in found:
        log.warning(
            "maintenance: Celery setting %s should be %s for maintenance mode: without it %s",
            req.setting,
            req.wanted,
            req.breaks,
        )
    return found
