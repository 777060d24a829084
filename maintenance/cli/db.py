"""``maintenance db``: create or upgrade the SQL store, check it is the fleet's, adopt a new one."""

from __future__ import annotations

from typing import Any

import click

from ..domain.record import FleetRecord, SqlRecord, Verdict, judge
from ..domain.validation import validate_note
from ..fencing import ActivationResult
from .context import CliContext, default_actor, json_option, pass_ctx
from .params import ACTOR, WAIT


@click.group()
def db() -> None:
    """The SQL system of record: schema, identity, adoption."""


def _fleet_view(database_url: str) -> tuple[SqlRecord, FleetRecord | None]:
    """The store's record and, when Redis answers, the fleet's (no service, no writes)."""
    from ..keys import Keys
    from ..record import read_fleet
    from ..redisconn import REDIS_ERRORS, make_client, resolve_redis_url
    from ..settings import Settings
    from ..store.database import Database
    from ..store.identity import read_record

    settings = Settings.from_env()
    database = Database(database_url)
    try:
        sql = read_record(database)
    finally:
        database.dispose()
    client = make_client(resolve_redis_url(settings), timeout=settings.redis_socket_timeout)
    try:
        return sql, read_fleet(client, Keys(settings.redis_prefix))
    except REDIS_ERRORS:
        return sql, None
    finally:
        client.close()


@db.command()
@click.option("--database-url", default=None, help="Default: MAINTENANCE_DATABASE_URL.")
def upgrade(database_url: str | None) -> None:
    """Create the SQL store (schema and identity) or upgrade its schema."""
    from ..settings import Settings
    from ..store.database import Database
    from ..store.migrations import SCHEMA_VERSION
    from ..store.migrations import upgrade as run_upgrade

    url = database_url or Settings.from_env().database_url
    database = Database(url)
    try:
        applied = run_upgrade(database.engine)
    finally:
        database.dispose()
    if applied:
        click.echo(f"Applied migrations {applied}; schema is at version {SCHEMA_VERSION}.")
    else:
        click.echo(f"Schema is up to date (version {SCHEMA_VERSION}).")
    sql, fleet = _fleet_view(url)
    if fleet is not None and not judge(sql, fleet).ok:
        click.echo(
            "The fleet does not use this store yet: writes are refused until an operator "
            "runs `maintenance db adopt`."
        )


def _record_dict(sql: SqlRecord, fleet: FleetRecord | None, verdict: Verdict | None) -> Any:
    return {
        "store": {
            "schema_version": sql.schema_version,
            "identity": sql.identity.to_dict() if sql.identity else None,
            "version": sql.version,
        },
        "fleet": None
        if fleet is None
        else {
            "identity": fleet.identity.to_dict() if fleet.identity else None,
            "version": fleet.version,
        },
        "ok": verdict.ok if verdict else None,
        "problem": verdict.reason if verdict else "Redis unavailable: the fleet cannot be asked",
    }


@db.command()
@json_option
@pass_ctx
def check(ctx: CliContext) -> None:
    """Say whether the SQL store is the fleet's system of record (exit 1 when not)."""
    from ..settings import Settings

    sql, fleet = _fleet_view(Settings.from_env().database_url)
    verdict = judge(sql, fleet) if fleet is not None else None
    data = _record_dict(sql, fleet, verdict)
    store = sql.identity.describe() if sql.identity else "store without identity"
    store = f"{store}, schema {sql.schema_version}, state version {sql.version}"
    if sql.empty:
        store = "empty (no schema)"
    seen = "unknown" if fleet is None else (fleet.identity.describe() if fleet.identity else "none")
    lines = [
        f"SQL store:  {store}",
        f"Fleet uses: {seen}, highest version seen {fleet.version if fleet else 'unknown'}",
        "Verdict:    "
        + ("ok" if verdict and verdict.ok else f"REFUSING WRITES: {data['problem']}"),
    ]
    ctx.emit(data, "\n".join(lines))
    if not (verdict and verdict.ok):
        raise click.exceptions.Exit(1)


@db.command()
@json_option
@click.option(
    "--use",
    type=click.Choice(["fleet", "store"]),
    default="fleet",
    show_default=True,
    help="Whose status the adopted store carries on: what the fleet enforces now, "
    "or what the store itself holds.",
)
@click.option("--by", "actor", type=ACTOR, default=None, help="Who is adopting (default: $USER).")
@click.option("--reason", default=None, help="Why (kept in the event log).")
@click.option("--wait", type=WAIT, default=None, help="Seconds to wait for every live node.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def adopt(
    ctx: CliContext, use: str, actor: str | None, reason: str | None, wait: float | None, yes: bool
) -> None:
    """Make the fleet use this SQL store on purpose (after a restore or a new database)."""
    service = ctx.service
    if not yes:
        problem = service.record.problem() or "the fleet already uses this store"
        click.confirm(f"{problem}\nAdopt this store for the whole fleet?", abort=True)
    result = service.adopt_store(
        actor or default_actor(), validate_note(reason), use=use, wait=wait
    )
    if result is None:
        ctx.emit({"adopted": False}, "The fleet already uses this store; nothing to adopt.")
        return
    ctx.emit({"adopted": True, **result.to_dict()}, _render_adoption(result))
    if result.propagation == "timeout":
        raise click.exceptions.Exit(1)


def _render_adoption(result: ActivationResult) -> str:
    from ..domain.record import StoreIdentity
    from .render import render_result

    store = result.details["store"]
    identity = StoreIdentity(store["id"], _parse_time(store["created_at"]))
    head = (
        f"Adopted {identity.describe()}; the fleet uses it from version {result.status.version} "
        f"(status taken from the {result.details['status_from']}; the store was at version "
        f"{result.details['store_version']}, the fleet had seen {result.details['fleet_version']})."
    )
    tail = render_result("status", result).split(". ", 1)[-1]
    return f"{head}\n{tail}"


def _parse_time(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)
