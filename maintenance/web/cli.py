"""``flask maintenance`` (the core CLI group, bound to the app's settings) and the
``maintenance sessions`` command (a ``maintenance.cli`` entry-point plugin)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import click
from flask import Flask
from flask.cli import ScriptInfo

from ..cli import cli as core_cli
from ..cli.context import CliContext, default_actor, json_option, pass_ctx
from ..domain.validation import parse_duration
from ..service import EnhancedMaintenanceModeService
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

            settings = state_of(self.app).service.settings
            self._service = build_service(settings, kind="cli", register=False)
        return self._service


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
            ctx.obj = AppCliContext(app, as_json=as_json)

    _load_plugins(core_cli)
    return click.Group(
        name="maintenance",
        commands=core_cli.commands,
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
@click.option("--sample", type=click.IntRange(0, 1000), default=10, show_default=True)
@click.option(
    "--window", default="30m", show_default=True, help="A session seen this recently is active."
)
@click.option("--by", "actor", default=None, help="Who is invalidating (default: $USER).")
@click.option("--wait", type=float, default=None, help="Seconds to wait for every web node.")
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
    result = None
    if invalidate:
        result = manager.invalidate_non_admin_sessions(actor or default_actor(), wait=wait)
    active = manager.get_active_non_admin_sessions(sample=sample, window=seconds)
    data: dict[str, Any] = {"active": active.to_dict()}
    if result is not None:
        data["invalidated"] = result.to_dict()
    ctx.emit(data, None if ctx.as_json else _render(active, result))


def _render(active: Any, result: Any) -> str:
    import datetime as dt

    lines = []
    if result is not None:
        where = "" if result.server_side else " (cookie sessions only: no session store reachable)"
        lines.append(
            f"Invalidated {result.count} non-admin session(s){where}; "
            f"{result.deleted} server-side removed in {result.seconds * 1000:.0f} ms; "
            f"epoch now {result.epoch}."
        )
    minutes = active.window_seconds // 60
    lines.append(
        f"Active non-admin sessions (last {minutes} min): {active.count}   "
        f"admins: {active.admin_count}"
    )
    for row in active.sample:
        seen = dt.datetime.fromtimestamp(row["last_seen"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"  {row['user'] or '?':<32} last seen {seen} UTC  ({row['kind']})")
    return "\n".join(lines)
