"""CLI commands over the maintenance state: status, enable, disable, history, nodes, db."""

from __future__ import annotations

import threading

import click

from ..domain.enable_request import EnableRequest
from .context import CliContext, default_actor, json_option, mode_option, pass_ctx
from .render import jsonable_events, render_history, render_nodes, render_result, render_status


@click.command()
@json_option
@click.option("--watch", is_flag=True, help="Keep printing the status as it changes.")
@pass_ctx
def status(ctx: CliContext, watch: bool) -> None:
    """Show the maintenance status."""
    service = ctx.service
    current = service.get_maintenance_status()
    nodes = service.nodes()
    if ctx.as_json:
        ctx.emit({**current.to_dict(), "nodes": [n.to_dict() for n in nodes.values()]})
    else:
        click.echo(render_status(current, nodes))
    if not watch:
        return
    changed = threading.Event()
    service.subscribe_to_status_changes(lambda _s: changed.set())
    try:
        while True:
            changed.wait(5.0)
            changed.clear()
            current = service.get_maintenance_status()
            if ctx.as_json:
                ctx.emit(current.to_dict())
            else:
                click.echo("\n" + render_status(current, service.nodes()))
    except KeyboardInterrupt:
        return


@click.command()
@json_option
@click.option("--reason", required=True, help="Why (shown to users; at most 500 characters).")
@click.option("--duration", default=None, help="Expected length: 90s, 30m, 1h30m, 2d (max 7d).")
@mode_option
@click.option(
    "--block",
    "block",
    multiple=True,
    help="Block only these operation types (repeat or comma-separate); default: the mode's set.",
)
@click.option(
    "--wait",
    type=float,
    is_flag=False,
    flag_value=2.0,
    default=None,
    help="Seconds to wait until every live node applied it (default from settings).",
)
@click.option("--by", "actor", default=None, help="Who is enabling (default: $USER).")
@click.option("--secret", is_flag=True, help="Also print a one-time bypass link for testing.")
@click.option("--expect-version", type=int, default=None, help="Fail if the state moved on.")
@pass_ctx
def enable(
    ctx: CliContext,
    reason: str,
    duration: str | None,
    mode: str,
    block: tuple[str, ...],
    wait: float | None,
    actor: str | None,
    secret: bool,
    expect_version: int | None,
) -> None:
    """Switch maintenance on (or change it while on)."""
    # Checked in full before any store is touched.
    req = EnableRequest.validate(
        reason,
        duration,
        mode,
        actor or default_actor(),
        [p for b in block for p in b.split(",") if p.strip()] or None,
        wait=wait,
        expected_version=expect_version,
    )
    result = ctx.service.enable(req)
    link = None
    if secret:
        from ..bypass_tokens import create_bypass_link

        link = create_bypass_link(ctx.service, req.actor)
    if ctx.as_json:
        ctx.emit({**result.to_dict(), **({"bypass_link": link} if link else {})})
    else:
        click.echo(render_result("enabled", result))
        if link:
            click.echo(f"Bypass link (one use, 1 hour): {link}")
    if result.propagation == "timeout":
        raise click.exceptions.Exit(1)


@click.command()
@json_option
@click.option("--no-requeue", is_flag=True, help="Do not republish deferred/terminated jobs.")
@click.option("--wait", type=float, is_flag=False, flag_value=2.0, default=None)
@click.option("--by", "actor", default=None, help="Who is disabling (default: $USER).")
@click.option("--reason", default=None, help="Optional note for the event log.")
@pass_ctx
def disable(
    ctx: CliContext, no_requeue: bool, wait: float | None, actor: str | None, reason: str | None
) -> None:
    """Switch maintenance off (requeueing deferred and terminated jobs)."""
    result = ctx.service.disable_maintenance(
        actor or default_actor(), requeue=not no_requeue, wait=wait, reason=reason
    )
    if ctx.as_json:
        ctx.emit(result.to_dict())
    else:
        click.echo(render_result("disabled", result))
    if result.propagation == "timeout":
        raise click.exceptions.Exit(1)


@click.command()
@json_option
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--kind", "kinds", multiple=True, help="Only events of this kind (repeatable).")
@pass_ctx
def history(ctx: CliContext, limit: int, kinds: tuple[str, ...]) -> None:
    """Show the event log, newest first."""
    events = ctx.service.history(limit, kinds=kinds or None)
    ctx.emit(jsonable_events(events), None if ctx.as_json else render_history(events))


@click.command()
@json_option
@pass_ctx
def nodes(ctx: CliContext) -> None:
    """List live nodes and the status version each applied."""
    found = ctx.service.nodes()
    version = ctx.service.status.version
    data = [n.to_dict() for n in found.values()]
    ctx.emit(data, None if ctx.as_json else render_nodes(found, version))


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@click.option("--database-url", default=None, help="Default: MAINTENANCE_DATABASE_URL.")
def upgrade(database_url: str | None) -> None:
    """Create or upgrade the control plane's SQL schema."""
    from ..settings import Settings
    from ..store.database import Database
    from ..store.migrations import SCHEMA_VERSION
    from ..store.migrations import upgrade as run_upgrade

    settings = Settings.from_env()
    database = Database(database_url or settings.database_url)
    applied = run_upgrade(database.engine)
    if applied:
        click.echo(f"Applied migrations {applied}; schema is at version {SCHEMA_VERSION}.")
    else:
        click.echo(f"Schema is up to date (version {SCHEMA_VERSION}).")
