"""``maintenance recover``, and requeueing right after the CLI's own ``maintenance disable``.

Plugged into ``maintenance`` through the ``maintenance.cli`` entry-point group.
Both publish through a Celery app with the hooks installed (``load_app``), so
they live here. Loading this module makes ``maintenance disable`` requeue the
deferred jobs at once (when it can reach the broker; otherwise the beat check
does it).
"""

from __future__ import annotations

from typing import Any

import click

from maintenance import EnhancedMaintenanceModeService
from maintenance import events as maintenance_events
from maintenance.cli.context import CliContext, default_actor, json_option, pass_ctx
from maintenance.cli.params import ACTOR, Count
from maintenance.cli.render import terminal_lines
from maintenance.commands.recover import recover as recover_command
from maintenance.store.jobs import JobStore
from workers.requeue import RequeueReport, requeue_jobs

from .appload import load_app
from .install import requeues_for

APP_OPTION_HELP = "Celery app (module or module:attr); default $CELERY_APP, else celeryconfig."


# -- recover -------------------------------------------------------------------------
def _render_report(report: RequeueReport) -> str:
    if report.skipped:
        return f"Nothing requeued: {report.skipped}."
    if report.refused and not report.requeued and not report.failed:
        return f"Recovery refused: {report.refused}."
    lines = [f"Requeued {len(report.requeued)} job(s)."]
    lines += [f"  {old} -> {new}" for old, new in report.requeued[:50]]
    if len(report.requeued) > 50:
        lines.append(f"  ... and {len(report.requeued) - 50} more")
    for old, error in report.failed:
        lines.append(f"  FAILED {old}: {error}")
    if report.refused:
        lines.append(f"Recovery refused: {report.refused}.")
    if report.recovery_completed:
        lines.append("Recovery complete.")
    return "\n".join(lines)


@click.command()
@json_option
@click.option("-A", "--app", "app_spec", default=None, help=APP_OPTION_HELP)
@click.option("--limit", type=Count(1), default=None, help="At most this many.")
@click.option("--force", is_flag=True, help="Requeue even while maintenance is on.")
@click.option("--by", "actor", type=ACTOR, default=None, help="Who is recovering (default: $USER).")
@pass_ctx
def recover(
    ctx: CliContext, app_spec: str | None, limit: int | None, force: bool, actor: str | None
) -> None:
    """Republish every deferred (own id) and terminated (new id) job exactly once, in order."""
    service = ctx.service
    app = load_app(app_spec, service)
    outcome = recover_command(
        service,
        ctx.actor(actor),
        lambda svc, **options: requeue_jobs(app, svc, **options),
        limit=limit,
        force=force,
    )
    ctx.emit(outcome.to_dict(), None if ctx.as_json else _render_report(outcome.value))
    if outcome.exit_code():
        raise click.exceptions.Exit(outcome.exit_code())


# -- requeue after `maintenance disable` ---------------------------------------------
def _requeue_after_disable(
    sender: Any, requeue: bool = True, actor: str | None = None, **_: Any
) -> None:
    if not requeue or not isinstance(sender, EnhancedMaintenanceModeService):
        return
    if requeues_for(sender):
        return  # an installed app in this process answers it

    try:
        if not JobStore(sender.db).requeueable(limit=1):
            return  # nothing held back: no Celery app needed (the beat check tidies up)
        report = requeue_jobs(load_app(None, sender), sender, actor=actor or default_actor())
    except Exception as exc:
        click.echo(
            f"maintenance: deferred jobs not requeued yet ({exc}); "
            "run `maintenance recover` or let the beat check do it",
            err=True,
        )
        return
    if report.requeued or report.failed or report.refused:
        # A result, like ``emergency --off``'s requeue list: on stdout -- unless stdout
        # carries ``--json``, which it must not break.
        click.echo(terminal_lines(_render_report(report)), err=_json_output())


def _json_output() -> bool:
    ctx = click.get_current_context(silent=True)
    cli = ctx.find_object(CliContext) if ctx is not None else None
    return bool(cli is not None and cli.as_json)


def _scope_to_cli_service(
    sender: Any, service: EnhancedMaintenanceModeService | None = None, **_: Any
) -> None:
    # Only the CLI's own service: other services in the process are not ours to requeue for.
    if service is not None:
        maintenance_events.maintenance_disabled.connect(
            _requeue_after_disable, sender=service, weak=False
        )


maintenance_events.cli_service_ready.connect(_scope_to_cli_service, weak=False)
