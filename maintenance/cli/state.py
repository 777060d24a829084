"""CLI commands over the maintenance state: status, enable, disable, history, nodes."""

from __future__ import annotations

import threading

import click

from ..bypass_tokens import LINK_TTL, link_signer
from ..commands.bypass import bypass_link as bypass_link_command
from ..commands.disable import disable as disable_command
from ..commands.enable import enable as enable_command
from ..domain.enable_request import EnableRequest
from ..domain.history import validate_kinds
from ..domain.status import MaintenanceStatus
from ..errors import RedisUnavailable
from ..nodes import NodeInfo
from ..redisconn import REDIS_ERRORS, describe_redis_error
from ..service import EnhancedMaintenanceModeService
from .context import CliContext, default_actor, json_option, mode_option, pass_ctx
from .params import ACTOR, WAIT, Count
from .render import jsonable_events, render_history, render_nodes, render_outcome, render_status


@click.command()
@json_option
@click.option("--watch", is_flag=True, help="Keep printing the status as it changes.")
@pass_ctx
def status(ctx: CliContext, watch: bool) -> None:
    """Show the maintenance status."""
    service = ctx.service
    current, nodes = _status_and_nodes(service)
    if ctx.as_json:
        listed = None if nodes is None else [n.to_dict() for n in nodes.values()]
        ctx.emit({**current.to_dict(), "nodes": listed})
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
            current, nodes = _status_and_nodes(service)
            if ctx.as_json:
                ctx.emit(current.to_dict())
            else:
                click.echo("\n" + render_status(current, nodes))
    except KeyboardInterrupt:
        return


def _status_and_nodes(
    service: EnhancedMaintenanceModeService,
) -> tuple[MaintenanceStatus, dict[str, NodeInfo] | None]:
    """The status from what is reachable; without Redis no node list, ``degraded`` says why."""
    current = service.get_maintenance_status()
    try:
        return current, service.nodes()
    except REDIS_ERRORS as exc:
        why = f"Redis unavailable ({describe_redis_error(exc)}): live nodes unknown"
        reasons = [r for r in (current.degraded_reason, why) if r]
        return current.with_changes(degraded=True, degraded_reason="; ".join(reasons)), None


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
    type=WAIT,
    is_flag=False,
    flag_value=2.0,
    default=None,
    help="Seconds to wait until every live node applied it (default from settings).",
)
@click.option("--by", "actor", type=ACTOR, default=None, help="Who is enabling (default: $USER).")
@click.option("--secret", is_flag=True, help="Also print a one-time bypass link for testing.")
@click.option("--expect-version", type=Count(0), default=None, help="Fail if the state moved on.")
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
        operations=ctx.settings.operations,
    )
    if secret:  # what a link needs (secret key, public URL) is checked before enabling
        link_signer(ctx.service)
    outcome = enable_command(ctx.service, ctx.actor(actor), req, invalidate=ctx.invalidator())
    link = (
        bypass_link_command(ctx.service, ctx.actor(actor), ttl=LINK_TTL).value if secret else None
    )
    if ctx.as_json:
        ctx.emit({**outcome.to_dict(), **({"bypass_link": link} if link else {})})
    else:
        click.echo(render_outcome("enabled", outcome))
        if link:
            click.echo(f"Bypass link (one use, {LINK_TTL // 60} minutes): {link}")
    if outcome.exit_code():
        raise click.exceptions.Exit(outcome.exit_code())


@click.command()
@json_option
@click.option("--no-requeue", is_flag=True, help="Do not republish deferred/terminated jobs.")
@click.option("--wait", type=WAIT, is_flag=False, flag_value=2.0, default=None)
@click.option("--by", "actor", type=ACTOR, default=None, help="Who is disabling (default: $USER).")
@click.option("--reason", default=None, help="Optional note for the event log.")
@pass_ctx
def disable(
    ctx: CliContext, no_requeue: bool, wait: float | None, actor: str | None, reason: str | None
) -> None:
    """Switch maintenance off (requeueing deferred and terminated jobs)."""
    outcome = disable_command(
        ctx.service, ctx.actor(actor), requeue=not no_requeue, wait=wait, reason=reason
    )
    if ctx.as_json:
        ctx.emit(outcome.to_dict())
    else:
        click.echo(render_outcome("disabled", outcome))
    if outcome.exit_code():
        raise click.exceptions.Exit(outcome.exit_code())


@click.command()
@json_option
@click.option("--limit", type=Count(1, 10_000), default=20, show_default=True)
@click.option("--kind", "kinds", multiple=True, help="Only events of this kind (repeatable).")
@pass_ctx
def history(ctx: CliContext, limit: int, kinds: tuple[str, ...]) -> None:
    """Show the event log, newest first."""
    events = ctx.service.history(limit, kinds=validate_kinds(kinds) or None)
    ctx.emit(jsonable_events(events), None if ctx.as_json else render_history(events))


@click.command()
@json_option
@pass_ctx
def nodes(ctx: CliContext) -> None:
    """List live nodes and the status version each applied."""
    try:
        found = ctx.service.nodes()
    except REDIS_ERRORS as exc:
        raise RedisUnavailable(
            f"Redis unavailable ({describe_redis_error(exc)}): the node registry cannot be read"
        ) from exc
    version = ctx.service.status.version
    data = [n.to_dict() for n in found.values()]
    ctx.emit(data, None if ctx.as_json else render_nodes(found, version))
