"""CLI commands for reports and rehearsals: ``report``, ``rehearsal report|reset``."""

from __future__ import annotations

import click

from ..reports import FORMATS, list_reports, load_report, render, save_report
from .context import CliContext, default_actor, json_option, pass_ctx
from .params import ACTOR
from .render import terminal_lines


@click.command()
@click.argument("report_id", required=False)
@click.option("--emergency", "emergency_id", default=None, help="The report of this emergency.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="json, md or html (default: md; json with --json).",
)
@click.option("--list", "list_only", is_flag=True, help="List stored reports instead.")
@json_option
@pass_ctx
def report(
    ctx: CliContext,
    report_id: str | None,
    emergency_id: str | None,
    fmt: str | None,
    list_only: bool,
) -> None:
    """Show a stored report (emergency or rehearsal) as JSON, Markdown or HTML."""
    if list_only:
        rows = list_reports(ctx.service)
        human = "\n".join(f"{r['created_at']}  {r['kind']:<10} {r['id']}" for r in rows)
        ctx.emit(rows, None if ctx.as_json else (human or "No reports stored."))
        return
    wanted = emergency_id or report_id
    if not wanted:
        raise click.UsageError("give a REPORT_ID, --emergency ID or --list")
    stored = load_report(ctx.service, wanted)
    click.echo(terminal_lines(render(stored, fmt or ("json" if ctx.as_json else "md"))))


@click.group()
def rehearsal() -> None:
    """TEST-mode rehearsals: validation report and reset."""


@rehearsal.command("report")
@click.option("--activation", default=None, help="Activation id (default: the current one).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None)
@click.option("--save", is_flag=True, help="Store the report and print its id.")
@json_option
@pass_ctx
def rehearsal_report(ctx: CliContext, activation: str | None, fmt: str | None, save: bool) -> None:
    """Validation report of a rehearsal: would-blocks, fleet, performance, verdict."""
    from ..rehearsal import build_test_report

    body = build_test_report(ctx.service, activation)
    aid = body["activation"]["activation_id"]
    if aid is None:
        raise click.UsageError(
            "no rehearsal found: start one with `maintenance enable --mode test`"
        )
    stored = {
        "id": "(unsaved)",
        "kind": "test",
        "activation_id": aid,
        "created_at": body["generated_at"],
        "body": body,
    }
    if save:
        stored["id"] = save_report(ctx.service, "test", body, activation_id=aid)
    click.echo(terminal_lines(render(stored, fmt or ("json" if ctx.as_json else "md"))))
    if save and not ctx.as_json:
        click.echo(f"Saved as report {stored['id']}.")


@rehearsal.command("reset")
@click.option("--by", "actor", type=ACTOR, default=None)
@pass_ctx
def rehearsal_reset(ctx: CliContext, actor: str | None) -> None:
    """Clear the current rehearsal's would-block counters and samples (start over)."""
    from ..rehearsal import reset_rehearsal

    removed = reset_rehearsal(ctx.service, actor or default_actor())
    click.echo(f"Rehearsal counters cleared ({removed} logged attempt(s) removed).")
