"""``flask maintenance`` (the core CLI group, bound to the app's settings) and the
``maintenance sessions`` command (a ``maintenance.cli`` entry-point plugin)."""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from typing import Any

import click
from flask import Flask
from flask.cli import ScriptInfo

from ..cli import cli as core_cli
from ..cli import failure
from ..cli.context import CliContext, json_option, pass_ctx
from ..cli.params import ACTOR, WAIT, Count
from ..commands import Outcome
from ..commands.sessions import invalidate_sessions
from ..domain.validation import parse_duration
from ..errors import RedisUnavailable
from ..redisconn import REDIS_ERRORS, describe_redis_error
from ..service import EnhancedMaintenanceModeService
from ..settings import Settings
from .state import KEY, state_of


class AppCliContext(CliContext):
    """A ``CliContext`` whose service uses the Flask app's maintenance settings.

    It builds its own service (kind ``cli``, not a fenced node), so a short-lived
    command never shows up as a web node that enables would wait for.
    """

    def __init__(self, app: Flask, as_json: bool = False) -> None:
        super().__init__(as_json=as_json)
        self.app = app

    @property
    def service(self) -> EnhancedMaintenanceModeService:
        """A CLI service with the app's settings."""
        if self._service is None:
            from ..factory import build_service

            self._service = build_service(self.settings, kind="cli", register=False)
        return self._service

    @property
    def settings(self) -> Settings:
        """The app's maintenance settings."""
        return state_of(self.app).service.settings

    def invalidator(self) -> Any:
        """The app's session store (its Flask-Session client), as ``maintenance sessions``."""
        return _manager(self).invalidate_non_admin_sessions


_plugins_loaded = False


def _load_plugins(group: click.Group) -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group="maintenance.cli"):
        if ep.name in group.commands:
            continue
        try:
            group.add_command(ep.load(), ep.name)
        except Exception as exc:  # a broken plugin must not take the CLI down
            click.echo(f"warning: command {ep.name!r} unavailable: {exc}", err=True)


class _OneLineErrors(click.Group):
    """The core CLI's failures end ``flask maintenance`` as they end ``maintenance``: one
    line and the same exit code (2 for bad input), not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except Exception as exc:
            known = failure(exc)
            if known is None:
                raise
            message, code = known
            click.echo(f"maintenance: error: {message}", err=True)
            ctx.exit(code)


def flask_command() -> click.Group:
    """The core ``maintenance`` group for ``app.cli.add_command``: same commands and
    plugins, with the service built from the app's settings."""

    @click.pass_context
    def callback(ctx: click.Context, as_json: bool, verbose: int = 0) -> None:
        # Logging belongs to the Flask app here: -v is accepted and left to it.
        info = ctx.find_object(ScriptInfo)
        app = info.load_app() if info is not None else None
        if app is None or KEY not in app.extensions:
            ctx.obj = CliContext(as_json=as_json)
        else:
            # Loading the app registered this short-lived process as a web node
            # (MAINTENANCE_REGISTER_ON_START): leave, so enables never wait for it.
            cache = state_of(app).service.cache
            cache.stop()
            cache.register = False
            ctx.obj = AppCliContext(app, as_json=as_json)

    from .routes_cli import routes

    _load_plugins(core_cli)
    return _OneLineErrors(
        name="maintenance",
        commands={**core_cli.commands, "routes": routes},
        callback=callback,
        params=list(core_cli.params),
        help=core_cli.help,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _manager(ctx: CliContext) -> Any:
    from .session_manager import MaintenanceSessionManager

    if isinstance(ctx, AppCliContext):
        sessions = state_of(ctx.app).sessions
        interface = getattr(ctx.app, "session_interface", None)
        return MaintenanceSessionManager(
            ctx.service,
            store_client=getattr(interface, "client", None)
            or (sessions.index.store_client if sessions is not None else None),
        )
    return MaintenanceSessionManager(ctx.service)


@click.command()
@json_option
@click.option("--invalidate", is_flag=True, help="Log every non-admin out now.")
@click.option("--sample", type=Count(0, 1000), default=10, show_default=True)
@click.option(
    "--window", default="30m", show_default=True, help="A session seen this recently is active."
)
@click.option(
    "--by", "actor", type=ACTOR, default=None, help="Who is invalidating (default: $USER)."
)
@click.option("--wait", type=WAIT, default=None, help="Seconds to wait for every web node.")
@pass_ctx
def sessions(
    ctx: CliContext,
    invalidate: bool,
    sample: int,
    window: str,
    actor: str | None,
    wait: float | None,
) -> None:
    """Count logged-in non-admin sessions (with a sample); --invalidate logs them all out."""
    seconds = parse_duration(window, field="window") or 1800
    manager = _manager(ctx)
    outcome = None
    if invalidate:
        outcome = invalidate_sessions(
            ctx.service,
            ctx.actor(actor),
            # The command returns once the keys are deleted too (its output says when
            # the logout took effect, and how long the clean-up took after that).
            invalidate=functools.partial(manager.invalidate_non_admin_sessions, cleanup="inline"),
            wait=wait,
        )
    try:
        active = manager.get_active_non_admin_sessions(sample=sample, window=seconds)
    except REDIS_ERRORS as exc:
        if outcome is None:
            raise RedisUnavailable(f"Redis unavailable: {describe_redis_error(exc)}") from exc
        active = None  # the invalidation is done; only the count afterwards is missing
    data: dict[str, Any] = {"active": active.to_dict() if active is not None else None}
    if outcome is not None:
        data["invalidated"] = outcome.to_dict()
    ctx.emit(data, None if ctx.as_json else _render(active, outcome))
    if outcome is not None and outcome.exit_code():
        raise click.exceptions.Exit(outcome.exit_code())


def _render(active: Any, outcome: Outcome | None) -> str:
    import datetime as dt

    lines = []
    result = outcome.value if outcome is not None else None
    if outcome is not None and outcome.failed:
        lines.append(outcome.line())
    elif result is not None:
        where = "" if result.server_side else " (cookie sessions only: no session store reachable)"
        lines.append(
            f"Invalidated {result.count} non-admin session(s){where}; "
            f"in effect on every node after {result.effective_seconds * 1000:.0f} ms; "
            f"{result.deleted} server-side removed in {(result.cleanup_seconds or 0) * 1000:.0f}"
            f" ms more; epoch now {result.epoch}."
        )
    if active is None:
        lines.append("Active non-admin sessions: unknown (Redis unavailable).")
        return "\n".join(lines)
    minutes = active.window_seconds // 60
    lines.append(
        f"Active non-admin sessions (last {minutes} min): {active.count}   "
        f"admins: {active.admin_count}"
    )
    for row in active.sample:
        seen = dt.datetime.fromtimestamp(row["last_seen"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"  {row['user'] or '?':<32} last seen {seen} UTC  ({row['kind']})")
    return "\n".join(lines)
