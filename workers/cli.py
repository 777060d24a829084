"""CLI commands for the worker side that need no Celery app: ``jobs``, ``drain``,
``schedule``.

Plugged into ``maintenance`` through the ``maintenance.cli`` entry-point group;
``recover`` publishes, so it lives with the hooks (``signals.recover_cli``).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from maintenance import EnhancedMaintenanceModeService
from maintenance.cli.context import CliContext, default_actor, json_option, mode_option, pass_ctx
from maintenance.cli.params import ACTOR, Count, Seconds
from maintenance.cli.render import render_table, terminal_safe
from maintenance.domain.status import utcnow
from maintenance.domain.validation import (
    MAX_DURATION,
    parse_duration,
    validate_actor,
    validate_reason,
)
from maintenance.errors import ValidationError
from maintenance.job_registry import ActiveJob, JobRegistry, reap_dead_workers
from maintenance.store import jobs as job_states
from maintenance.store.jobs import JobRecord, JobStore
from maintenance.store.windows import CANCELLED, SCHEDULED, Window, WindowStore

from .drain import blocked_jobs_running, wait_for_drain


# -- jobs ----------------------------------------------------------------------------
def _render_records(records: list[JobRecord]) -> str:
    return render_table(
        records,
        "No held-back jobs.",
        f"{'id':>5}  {'state':<10} {'task':<32} {'queue':<12} {'original id':<36}  requeued as",
        lambda r: (
            f"{r.id:>5}  {r.state:<10} {r.task_name[:32]:<32} {(r.queue or '-')[:12]:<12} "
            f"{r.original_id:<36}  {r.requeued_id or '-'}"
        ),
    )


def _render_active(jobs: list[ActiveJob]) -> str:
    now = time.time()
    return render_table(
        jobs,
        "No running jobs.",
        f"{'task id':<36}  {'state':<8} {'operation':<22} {'worker':<24} {'running':>8}  task",
        lambda j: (
            f"{j.task_id:<36}  {j.state:<8} {j.operation:<22} {(j.worker or '-')[:24]:<24} "
            f"{now - j.started:>7.1f}s  {j.name}"
        ),
    )


@click.command()
@json_option
@click.option(
    "--state",
    type=click.Choice([*job_states.STATES, "active"]),
    default=None,
    help="Only jobs in this state; 'active' lists running jobs (default: every held-back job).",
)
@click.option("--limit", type=Count(1, 100_000), default=200, show_default=True)
@pass_ctx
def jobs(ctx: CliContext, state: str | None, limit: int) -> None:
    """List deferred / terminated / requeued jobs, or running ones (--state active)."""
    service = ctx.service
    if state == "active":
        reap_dead_workers(service)
        registry = JobRegistry(service.redis, service.keys)
        running = sorted(registry.all().values(), key=lambda j: j.started)[:limit]
        ctx.emit([j.to_dict() for j in running], None if ctx.as_json else _render_active(running))
        return
    records = JobStore(service.db).find(state, limit=limit)
    ctx.emit([r.to_dict() for r in records], None if ctx.as_json else _render_records(records))


# -- drain ---------------------------------------------------------------------------
@click.command()
@json_option
@click.option("--wait", is_flag=True, help="Wait (with a progress bar) until drained.")
@click.option(
    "--timeout", type=Seconds(MAX_DURATION), default=600.0, show_default=True, help="Seconds."
)
@pass_ctx
def drain(ctx: CliContext, wait: bool, timeout: float) -> None:
    """Show running jobs of blocked types; with --wait, exit 0 once drained, 1 on timeout."""
    service = ctx.service
    status = service.status
    if not status.is_active or status.test_mode:
        ctx.emit({"drained": True, "running": []}, "Nothing is blocked: there is nothing to drain.")
        return
    running = blocked_jobs_running(service, status)
    if not wait:
        ctx.emit(
            {"drained": not running, "running": [j.to_dict() for j in running]},
            _render_active(running) if running else "Drained: no job of a blocked type is running.",
        )
        if running:
            raise click.exceptions.Exit(1)
        return
    drained = _wait_with_progress(ctx, service, timeout, len(running))
    left = blocked_jobs_running(service)
    ctx.emit(
        {"drained": drained, "running": [j.to_dict() for j in left]},
        "Drained: no job of a blocked type is running."
        if drained
        else f"Timed out after {timeout:g}s; still running:\n{_render_active(left)}",
    )
    if not drained:
        raise click.exceptions.Exit(1)


def _wait_with_progress(
    ctx: CliContext, service: EnhancedMaintenanceModeService, timeout: float, initial: int
) -> bool:
    if ctx.as_json:
        return wait_for_drain(timeout, service)
    total = max(initial, 1)
    progress_bar: Any = click.progressbar(
        length=total,
        label="Draining",
        show_eta=False,
        show_percent=False,
        file=sys.stderr,
        item_show_func=lambda n: f"{n} running" if n is not None else "",
    )
    with progress_bar as bar:
        done = 0

        def progress(running: list[ActiveJob]) -> None:
            nonlocal total, done
            if len(running) > total - done:
                total = done + len(running)  # new continuations joined
                bar.length = total
            finished = total - len(running)
            bar.update(finished - done, len(running))
            done = finished

        return wait_for_drain(timeout, service, on_progress=progress)


# -- schedule ------------------------------------------------------------------------
def parse_when(
    value: str, *, field: str, now: datetime | None = None, base: datetime | None = None
) -> datetime:
    """``now``, ``+30m`` (from ``base``, default now) or an ISO 8601 time (naive means UTC)."""
    now = now or utcnow()
    text = value.strip()
    if text.lower() == "now":
        return now
    if text.startswith("+"):
        seconds = parse_duration(text[1:], field=field)
        assert seconds is not None
        try:
            return (base or now) + timedelta(seconds=seconds)
        except OverflowError:
            raise ValidationError(f"{field} {value!r} is out of range", field=field) from None
    try:
        when = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise ValidationError(
            f"{field} {value!r} is not a time (use ISO 8601 like 2025-06-01T22:00, now, or +30m)",
            field=field,
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _render_windows(windows: list[Window]) -> str:
    return render_table(
        windows,
        "No maintenance windows.",
        f"{'id':>4}  {'state':<9} {'mode':<9} {'start (UTC)':<19}  {'end (UTC)':<19}  reason",
        lambda w: (
            f"{w.id:>4}  {w.state:<9} {w.mode:<9} {w.start_at:%Y-%m-%d %H:%M:%S}  "
            f"{w.end_at:%Y-%m-%d %H:%M:%S}  {terminal_safe(w.reason)}"
        ),
    )


@click.command()
@json_option
@click.option("--start", default=None, help="When it starts: ISO 8601 (UTC if no zone), now, +2h.")
@click.option("--end", default=None, help="When it ends: ISO 8601, or +duration from the start.")
@click.option("--reason", default=None, help="Shown to users while it runs.")
@mode_option
@click.option("--list", "list_windows", is_flag=True, help="List windows instead.")
@click.option(
    "--cancel", type=Count(1), default=None, help="Cancel the scheduled window with this id."
)
@click.option("--by", "actor", type=ACTOR, default=None, help="Who schedules it (default: $USER).")
@pass_ctx
def schedule(
    ctx: CliContext,
    start: str | None,
    end: str | None,
    reason: str | None,
    mode: str,
    list_windows: bool,
    cancel: int | None,
    actor: str | None,
) -> None:
    """Schedule a maintenance window; the beat status check starts and ends it."""
    if list_windows:
        found = WindowStore(ctx.service.db).list()
        ctx.emit([w.to_dict() for w in found], None if ctx.as_json else _render_windows(found))
        return
    who = validate_actor(actor or default_actor(), "by")
    if cancel is not None:
        _cancel(ctx, cancel, who)
        return
    if not start or not end or reason is None:
        raise click.UsageError("--start, --end and --reason are required (or use --list/--cancel)")
    reason = validate_reason(reason)
    now = utcnow()
    start_at = parse_when(start, field="start", now=now)
    end_at = parse_when(end, field="end", now=now, base=start_at)
    if end_at <= start_at:
        raise ValidationError("end must be after start", field="end")
    if end_at <= now:
        raise ValidationError("end is in the past", field="end")
    if (end_at - start_at).total_seconds() > MAX_DURATION:
        raise ValidationError("a window may last at most 7 days", field="end")
    window = WindowStore(ctx.service.db).add(start_at, end_at, reason, mode.lower(), who)
    ctx.service.record_event(
        "window_scheduled", window.created_by, reason, {"window": window.to_dict()}
    )
    ctx.emit(
        window.to_dict(),
        f"Scheduled window {window.id}: {window.mode} maintenance from "
        f"{window.start_at:%Y-%m-%d %H:%M:%S} to {window.end_at:%Y-%m-%d %H:%M:%S} UTC.",
    )


def _cancel(ctx: CliContext, window_id: int, actor: str) -> None:
    store = WindowStore(ctx.service.db)
    window = store.get(window_id)
    if window is None:
        raise ValidationError(f"no maintenance window {window_id}", field="cancel")
    if not store.transition(window, SCHEDULED, CANCELLED):
        raise ValidationError(
            f"window {window_id} is {window.state}; only scheduled windows can be cancelled",
            field="cancel",
        )
    ctx.service.record_event("window_cancelled", actor, None, {"window_id": window_id})
    ctx.emit({**window.to_dict(), "state": CANCELLED}, f"Cancelled window {window_id}.")
