"""``maintenance emergency``: declare an emergency and watch its jobs stop, or lift it.

Plugged into the ``maintenance`` CLI through the ``maintenance.cli`` entry points. It
lives with the hooks because lifting requeues through a Celery app that has them.
"""

from __future__ import annotations

import time
from typing import Any

import click

from maintenance.cli.context import CliContext, default_actor, json_option, pass_ctx
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
from workers.emergency import EmergencyMaintenanceHandler

from .appload import load_app

APP_HELP = "Celery app for --off (module or module:attr); default $CELERY_APP, else celeryconfig."


class _Progress:
    """Prints a line whenever what the operator would see changes (at most once a second)."""

    def __init__(self) -> None:
        self.last: tuple[Any, ...] | None = None
        self.printed = 0.0

    def __call__(self, progress: EmergencyProgress) -> None:
        counts = progress.counts
        running = len(progress.running)
        left = progress.seconds_to_sigterm
        key = (progress.phase, running, tuple(sorted(counts.items())))
        now = time.monotonic()
        if key == self.last and not (left and now - self.printed >= 1.0):
            return  # nothing new, and no countdown to show
        self.last, self.printed = key, now
        grace = f"grace {left:.0f}s left, " if left else ""
        click.echo(
            f"[{progress.phase or '-'}] {grace}running {running} · "
            f"stopped cooperatively {counts.get('aborted', 0)} · "
            f"terminated {counts.get('terminated', 0)} · killed {counts.get('killed', 0)}"
            + (
                f" · cannot terminate {counts['unterminable']}"
                if counts.get("unterminable")
                else ""
            )
        )


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
            f"EMERGENCY {result.emergency_id} declared by {result.triggered_by} "
            f"(trigger: {result.trigger}); {fence}",
            f"{sessions}; non-admin logins refused",
            f"{len(result.running_at_activation)} job(s) running: asked to stop now, SIGTERM in "
            f"{plan.grace:g}s, SIGKILL {plan.kill_after:g}s after that",
        ]
    )


def _termination_text(result: TerminationResult) -> str:
    lines = [
        ("Termination finished" if result.finished else "Termination NOT finished")
        + (" (timed out)" if result.timed_out else "")
        + f": {result.count('aborted')} stopped cooperatively, "
        f"{result.count('terminated')} terminated, {result.count('killed')} killed, "
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
            f"  NOT requeued (not safe to rerun): {job['task_name']}[{job['original_id']}]"
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
@click.option("--by", "actor", default=None, help="Who (default: $USER).")
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
    who = actor or default_actor()
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
        progress = EmergencyMaintenanceHandler(ctx.service).emergency_progress()
        ctx.emit(progress.to_dict(), None if ctx.as_json else _progress_text(progress))
        return
    if reason is None:
        if not critical_only:
            raise click.UsageError("give --reason (declare), --off, --critical-only or --progress")
        result = EmergencyMaintenanceHandler(ctx.service).enable_critical_admin_only(who)
        ctx.emit(result.to_dict(), "Only administrators flagged critical get through now.")
        return
    _declare(ctx, who, reason, grace, kill_after, duration, critical_only, no_wait, trigger)


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
    who: str,
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
    result = handler.activate_emergency_mode(
        reason,
        who,
        grace_s,
        kill_s,
        trigger,
        duration=duration,
        critical_admin_only=critical_only,
        watch=False,
    )
    if not ctx.as_json:
        click.echo(_activation_text(result))
    termination = None
    if not no_wait:
        termination = handler.terminate_running_jobs(
            on_progress=None if ctx.as_json else _Progress()
        )
    if ctx.as_json:
        ctx.emit(
            {**result.to_dict(), "termination": termination.to_dict() if termination else None}
        )
    else:
        if termination is not None:
            click.echo(_termination_text(termination))
        click.echo(
            f"Emergency id (and report id): {result.emergency_id}. "
            f"Lift it with `maintenance emergency --off`."
        )
    if not result.fenced or (termination is not None and not termination.finished):
        raise click.exceptions.Exit(1)


def _lift(ctx: CliContext, who: str, app_spec: str | None, *, requeue: bool, force: bool) -> None:
    app = None
    try:
        app = load_app(app_spec, ctx.service)
    except Exception as exc:  # lifting must not depend on the broker being reachable
        click.echo(f"maintenance: no Celery app ({exc}); requeue left to the workers", err=True)
    handler = EmergencyMaintenanceHandler(ctx.service, app)
    result = handler.deactivate_emergency_mode(who, requeue=requeue, force=force)
    ctx.emit(result.to_dict(), None if ctx.as_json else _deactivation_text(result))
