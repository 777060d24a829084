"""``maintenance notify status|deliver``: where webhook notifications stand; deliver them now."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime
from typing import Any

import click

from ..errors import StoreUnavailable, ValidationError
from ..notify import outbox
from ..notify.delivery import PassReport
from ..notify.health import NotifyHealth
from .context import CliContext, json_option, pass_ctx
from .params import WAIT


@click.group()
def notify() -> None:
    """Webhook notifications (MAINTENANCE_WEBHOOK_URLS)."""


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_health(health: NotifyHealth) -> str:
    """Human-readable ``notify status``."""
    data = health.to_dict()
    configured = sum(1 for e in data["endpoints"] if e["configured_here"])
    if not data["endpoints"]:
        return "Webhooks: none configured (set MAINTENANCE_WEBHOOK_URLS)"
    signed = "signed" if health.signed else "UNSIGNED (set MAINTENANCE_WEBHOOK_SECRET)"
    lines = [f"Webhooks: {configured} configured here, {signed}"]
    for e in data["endpoints"]:
        here = "" if e["configured_here"] else "  (not configured in this process)"
        lines.append(
            f"  {e['label']}  {e['format'] or '?'}{here}\n"
            f"      pending {e['pending']} (retrying {e['retrying']}), given up {e['failed']}, "
            f"delivered {e['delivered']}, last delivered {_when(e['last_delivered_at'])}"
        )
        if e["last_error"]:
            lines.append(
                f"      failing since {_when(e['failing_since'])}; last error "
                f"({_when(e['last_error_at'])}): {e['last_error']}"
            )
    lines.append(f"Degraded: {health.reason}" if health.degraded else "Degraded: no")
    return "\n".join(lines)


@notify.command("status")
@json_option
@pass_ctx
def status(ctx: CliContext) -> None:
    """Pending, retrying and given-up notifications per endpoint, with the last error."""
    health = ctx.service.notifier.health()
    ctx.emit(health.to_dict(), render_health(health))


def _render_pass(report: PassReport) -> str:
    text = (
        f"delivered {report.delivered}, retrying {report.retrying}, "
        f"given up {report.given_up}, held back {report.postponed}"
    )
    return "\n".join([text, *(f"  failed: {e}" for e in report.errors)])


@notify.command("deliver")
@json_option
@click.option(
    "--retry-failed", is_flag=True, help="Make given-up and backing-off notifications due now."
)
@click.option("--follow", is_flag=True, help="Keep delivering until interrupted (a deliverer).")
@click.option("--timeout", type=WAIT, default=60.0, show_default=True, help="Seconds at most.")
@pass_ctx
def deliver(ctx: CliContext, retry_failed: bool, follow: bool, timeout: float) -> None:
    """Deliver the notifications that are due now; exit 1 if any delivery failed."""
    service = ctx.service
    notifier = service.notifier
    if not notifier.configured:
        raise ValidationError("no webhook is configured (set MAINTENANCE_WEBHOOK_URLS)")
    if retry_failed:
        made_due = outbox.retry_failed(service.db, everything=True)
        if not ctx.as_json:
            click.echo(f"{made_due} notification(s) made due now")
    if follow:
        _follow(ctx, notifier.deliverer(), service.settings.webhook_poll_interval)
        return
    report = notifier.deliver_now(timeout=timeout)
    ctx.emit(report.to_dict(), _render_pass(report))
    if report.retrying or report.given_up:
        sys.exit(1)


def _follow(ctx: CliContext, deliverer: Any, poll_interval: float) -> None:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()
        outbox.committed.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not ctx.as_json:
        click.echo("delivering notifications; Ctrl-C to stop")
    while not stop.is_set():
        try:
            report = deliverer.run_once()
        except StoreUnavailable as exc:
            click.echo(f"maintenance: warning: {exc}; retrying", err=True)
            report = PassReport()
        if report.claimed:
            ctx.emit(report.to_dict(), _render_pass(report))
        if report.claimed < deliverer.batch and outbox.committed.wait(poll_interval):
            outbox.committed.clear()
