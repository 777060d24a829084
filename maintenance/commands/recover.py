"""Republish what maintenance held back: the ``recover`` command. Publishing needs a Celery
app with the hooks, so the caller passes ``requeue`` (``workers.requeue.requeue_jobs``
bound to its app); the core decides who may and says what happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .actor import Actor, authorize
from .outcome import Effect, Outcome

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService

#: ``requeue(service, actor=..., limit=..., force=...)`` -> a report with ``requeued``,
#: ``failed``, ``skipped``, ``refused`` (jobs of another broker) and ``to_dict()``.
Requeuer = Callable[..., Any]


def recover(
    service: EnhancedMaintenanceModeService,
    actor: Actor,
    requeue: Requeuer,
    *,
    limit: int | None = None,
    force: bool = False,
) -> Outcome:
    """Requeue deferred (under their own ids) and terminated (new ids) jobs exactly once."""
    authorize(service, actor)
    report = requeue(service, actor=actor.name, limit=limit, force=force)
    done = len(report.requeued)
    effects: list[Effect] = []
    if report.failed:
        effects.append(Effect("requeue", False, f"{len(report.failed)} job(s) not requeued"))
    if getattr(report, "refused", None):
        effects.append(Effect("routing", False, str(report.refused)))
    summary = (
        f"Nothing requeued: {report.skipped}." if report.skipped else f"Requeued {done} job(s)."
    )
    return Outcome(
        action="recover",
        committed=report.skipped is None,
        version=None,
        summary=summary,
        effects=tuple(effects),
        data=report.to_dict(),
        value=report,
    )
