"""``maintenance emergency``: declare an emergency and watch its jobs stop, or lift it.

Plugged into the ``maintenance`` CLI through the ``maintenance.cli`` entry points. It
lives with the hooks because lifting requeues through a Celery app that has them.
"""

from __future__ import annotations

import click

from maintenance.cli.context import CliContext, json_option, pass_ctx
from maintenance.cli.params import ACTOR
from maintenance.cli.render import LiveLine, terminal_lines
from maintenance.commands import Actor
from maintenance.commands import emergency as commands
from maintenance.domain.emergency_plan import (
    DEFAULT_GRACE,
    DEFAULT_KILL_AFTER,
    MAX_GRACE,
    MAX_KILL_AFTER,
    parse_seconds,
)
from maintenance.domain.validation import parse_duration, validate_reason
from maintenance.emergency import (
    TRIGGERS,
    EmergencyActivation,
    EmergencyDeactivation,
    EmergencyProgress,
    TerminationResult,
)
from maintenance.errors import MaintenanceError
from maintenance.redisconn import REDIS_ERRORS, describe_redis_error
from workers.emergency import EmergencyMaintenanceHandler

from .appload import load_app

#: What following the termination may fail with once the emergency is declared.
_WATCH_ERRORS: tuple[type[BaseException], ...] = (MaintenanceError, *REDIS_ERRORS)
APP_HELP = "Celery app for --off (module or module:attr); default $CELERY_APP, else celeryconfig."


class _Progress:
    """The watch as one live line: rewritten in place on a terminal (with the grace
    countdown), a plain line per change of phase or counts when piped."""

    def __init__(self) -> None:
        self.line = LiveLine()

    def __call__(self, progress: EmergencyProgress) -> None:
        counts = progress.counts
        left = progress.seconds_to_sigterm
        # The countdown ticks on a terminal only: piped, a line is printed per change.
        ticking = left and progress.phase == "grace" and self.line.tty
        grace = f"grace {left:.0f}s left, " if ticking else ""
        self.line.show(
            f"[{progress.phase or '-'}] {grace}running {len(progress.running)} · "
            f"stopped cooperatively {counts.get('aborted', 0)} · "
            f"terminated {counts.get('terminated', 0)} · killed {counts.get('killed', 0)}"
            + (
                f" · cannot terminate {counts['unterminable']}"
                if counts.get("unterminable")
                else ""
            )
        )

    def end(self) -> None:
        """Finish the live line before anything else is printed."""
        self.line.end()


def _activation_text(result: EmergencyActivation) -> str:
    a = result.activation
    fence = (
        f"fenced: {len(a.applied_nodes)} node(s) applied it in {a.waited_seconds * 1000:.1f} ms"
        if a.fenced
        else f"NOT fenced ({a.propagation}); lagging: "
        + ", ".join(str(n.get("node_id")) for n in a.lagging_nodes)
    )
    sessions = (
        f"{result.sessions['count']} non-admin session(s) logged out"
        if result.sessions
        else f"sessions NOT swept ({result.sessions_error})"
    )
    plan = result.plan
    return "\n".join(
        [
            f"EMERGENCY {result.emergency_id} declared by {_who(result)}; {fence}",
            f"{sessions}; non-admin logins refused",
            f"{len(result.running_at_activation)} job(s) running: asked to stop now, SIGTERM in "
            f"{plan.grace:g}s, SIGKILL {plan.kill_after:g}s after that",
        ]
    )


def _who(result: EmergencyActivation) -> str:
    """``alice (cli)``; the trigger only when it says something the name does not."""
    who, trigger = result.triggered_by, result.trigger
    if (trigger == "cli" and who.endswith("(cli)")) or trigger == "person":
        return who
    return f"{who} (trigger: {trigger})"


def _termination_text(result: TerminationResult) -> str:
    lines = [
        ("Termination finished" if result.finished else "Termination NOT finished")
        + (" (timed out)" if result.timed_out else "")
        + f": {result.count('aborted')} stopped cooperatively, "
        f"{result.count('terminated')} terminated, {result.count('killed')} killed, "
        f"{result.count('interrupted')} interrupted by a refused write or publish, "
        f"{len(result.finished_on_their_own)} finished on their own, "
        f"{len(result.unterminable)} could not be terminated."
    ]
    for job in result.unterminable:
        lines.append(f"  still running on {job['worker']} ({job['pool']} pool): {job['task_id']}")
    return "\n".join(lines)


def _deactivation_text(result: EmergencyDeactivation) -> str:
    lines = [f"Emergency {result.emergency_id} lifted."]
    if result.check.problems:
        lines.append("Forced past:")
        lines += [f"  {p}" for p in result.check.problems]
    lines += [f"  note: {n}" for n in result.check.notes]
    state = {
        "done": f"Requeued {len(result.requeued)} job(s) under new ids:",
        "partial": "Some jobs could not be requeued (see the log); run `maintenance recover`.",
        "pending": "Requeue left to the workers / beat (no Celery app here).",
        "skipped": "Nothing requeued (--no-requeue); run `maintenance recover` when ready.",
    }[result.requeue]
    lines.append(state)
    lines += [f"  {old} -> {new}" for old, new in result.requeued[:50]]
    for job in result.not_rerun_safe:
        lines.append(
            f"  NEEDS ACTION, not requeued (not safe to rerun): "
            f"{job['task_name']}[{job['original_id']}] ({job['outcome']}: {job['reason']})"
        )
    if result.report_id:
        lines.append(
            f"Report: {result.report_id} (maintenance report --emergency {result.report_id})"
        )
    return "\n".join(lines)


@click.command()
@json_option
@click.option("--reason", default=None, help="Declare an emergency: why (shown to users).")
@click.option(
    "--grace", default=f"{DEFAULT_GRACE:g}s", show_default=True, help="Time jobs get to stop."
)
@click.option(
    "--kill-after",
    default=f"{DEFAULT_KILL_AFTER:g}s",
    show_default=True,
    help="SIGTERM to SIGKILL.",
)
@click.option("--duration", default=None, help="Expected length shown to users (30m, 2h).")
@click.option("--critical-only", is_flag=True, help="Only administrators flagged critical.")
@click.option("--no-wait", is_flag=True, help="Return once declared; the workers stop jobs.")
@click.option("--off", is_flag=True, help="Lift the emergency (checks first).")
@click.option("--no-requeue", is_flag=True, help="With --off: do not republish stopped jobs.")
@click.option("--force", is_flag=True, help="With --off: lift despite failed checks.")
@click.option("--progress", "show_progress", is_flag=True, help="Where the emergency stands.")
@click.option("--trigger", type=click.Choice(TRIGGERS), default="cli", show_default=True)
@click.option("--by", "actor", type=ACTOR, default=None, help="Who (default: $USER).")
@click.option("-A", "--app", "app_spec", default=None, help=APP_HELP)
@pass_ctx
def emergency(
    ctx: CliContext,
    reason: str | None,
    grace: str,
    kill_after: str,
    duration: str | None,
    critical_only: bool,
    no_wait: bool,
    off: bool,
    no_requeue: bool,
    force: bool,
    show_progress: bool,
    trigger: str,
    actor: str | None,
    app_spec: str | None,
) -> None:
    """Declare an emergency (--reason), narrow it (--critical-only), watch it (--progress)
    or lift it (--off): running jobs are asked to stop, then SIGTERMed, then SIGKILLed."""
    who = ctx.actor(actor)
    if off:
        if reason is not None or critical_only or show_progress:
            raise click.UsageError(
                "--off does not combine with --reason, --critical-only, --progress"
            )
        _lift(ctx, who, app_spec, requeue=not no_requeue, force=force)
        return
    if no_requeue or force:
        raise click.UsageError("--no-requeue and --force go with --off")
    if show_progress:
        _show_progress(ctx)
        return
    if reason is None:
        if not critical_only:
            raise click.UsageError("give --reason (declare), --off, --critical-only or --progress")
        outcome = commands.critical_only(
            ctx.service, who, controller=EmergencyMaintenanceHandler(ctx.service)
        )
        ctx.emit(outcome.to_dict(), outcome.line())
        if outcome.exit_code():
            raise click.exceptions.Exit(outcome.exit_code())
        return
    _declare(ctx, who, reason, grace, kill_after, duration, critical_only, no_wait, trigger)


def _show_progress(ctx: CliContext) -> None:
    try:
        progress = EmergencyMaintenanceHandler(ctx.service).emergency_progress()
    except REDIS_ERRORS as exc:
        # What SQL knows, and why the workers' side is missing.
        status = ctx.service.state.load()
        why = f"Redis unavailable ({describe_redis_error(exc)}): the workers' progress is unknown"
        data = {
            "emergency_id": status.emergency_id,
            "phase": status.emergency_phase,
            "degraded": True,
            "degraded_reason": why,
        }
        text = (
            f"Emergency {status.emergency_id}: phase {status.emergency_phase or '-'}; {why}."
            if status.emergency_id
            else f"No emergency has been declared (according to SQL); {why}."
        )
        ctx.emit(data, None if ctx.as_json else text)
        raise click.exceptions.Exit(1) from None
    ctx.emit(progress.to_dict(), None if ctx.as_json else _progress_text(progress))


def _progress_text(progress: EmergencyProgress) -> str:
    if progress.emergency_id is None:
        return "No emergency has been declared."
    counts = progress.counts
    return (
        f"Emergency {progress.emergency_id}: phase {progress.phase or '-'}; "
        f"running {len(progress.running)}; stopped cooperatively {counts.get('aborted', 0)}, "
        f"terminated {counts.get('terminated', 0)}, killed {counts.get('killed', 0)}, "
        f"cannot terminate {counts.get('unterminable', 0)}"
    )


def _declare(
    ctx: CliContext,
    who: Actor,
    reason: str,
    grace: str,
    kill_after: str,
    duration: str | None,
    critical_only: bool,
    no_wait: bool,
    trigger: str,
) -> None:
    # Everything is checked before anything changes.
    validate_reason(reason)
    parse_duration(duration)
    grace_s = parse_seconds(grace, field="grace", maximum=MAX_GRACE)
    kill_s = parse_seconds(kill_after, field="kill_after", maximum=MAX_KILL_AFTER)
    handler = EmergencyMaintenanceHandler(ctx.service)
    outcome = commands.declare(
        ctx.service,
        who,
        reason,
        grace=grace_s,
        kill_after=kill_s,
        trigger=trigger,
        duration=duration,
        critical_admin_only=critical_only,
        invalidate=ctx.invalidator(),
        controller=handler,
    )
    result: EmergencyActivation = outcome.value
    if not ctx.as_json:
        click.echo(terminal_lines(_activation_text(result)))
        for effect in outcome.failed:
            if effect.name not in ("fencing", "sessions"):  # those two are in the text above
                click.echo(terminal_lines(f"NOT done: {effect.name}: {effect.detail}"))
    termination = None
    watch_error = None
    if not no_wait:
        watch = None if ctx.as_json else _Progress()
        try:
            termination = handler.terminate_running_jobs(on_progress=watch)
        except _WATCH_ERRORS as exc:
            # Declared either way: the workers stop their jobs from the plan in the status.
            watch_error = (
                f"termination progress unavailable ({exc}); the workers go on by themselves"
            )
        finally:
            if watch is not None:
                watch.end()
    if ctx.as_json:
        ctx.emit(
            {
                **outcome.to_dict(),
                "termination": termination.to_dict() if termination else None,
                "termination_error": watch_error,
            }
        )
    else:
        if termination is not None:
            click.echo(terminal_lines(_termination_text(termination)))
        if watch_error is not None:
            click.echo(terminal_lines(f"NOT done: {watch_error}"))
        click.echo(
            f"Emergency id (and report id): {result.emergency_id}. "
            f"Lift it with `maintenance emergency --off`."
        )
    unfinished = termination is not None and not termination.finished
    if outcome.exit_code() or unfinished or watch_error is not None:
        raise click.exceptions.Exit(1)


def _lift(ctx: CliContext, who: Actor, app_spec: str | None, *, requeue: bool, force: bool) -> None:
    app = None
    try:
        app = load_app(app_spec, ctx.service)
    except Exception as exc:  # lifting must not depend on the broker being reachable
        click.echo(f"maintenance: no Celery app ({exc}); requeue left to the workers", err=True)
    handler = EmergencyMaintenanceHandler(ctx.service, app)
    outcome = commands.lift(ctx.service, who, requeue=requeue, force=force, controller=handler)
    text = _deactivation_text(outcome.value)
    failed = [f"NOT done: {e.name}: {e.detail}" for e in outcome.failed]
    ctx.emit(outcome.to_dict(), None if ctx.as_json else "\n".join([text, *failed]))
    if outcome.exit_code():
        raise click.exceptions.Exit(outcome.exit_code())
