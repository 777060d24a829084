"""State shared by CLI commands: output mode and a lazily built service."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from ..commands import Actor
from ..domain.modes import MaintenanceMode
from ..service import EnhancedMaintenanceModeService
from ..settings import Settings


class CliContext:
    """Carries ``--json`` and builds the service only when a command needs it."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self._service: EnhancedMaintenanceModeService | None = None

    @property
    def service(self) -> EnhancedMaintenanceModeService:
        """A service for this CLI process (not a fenced node: it exits soon)."""
        if self._service is None:
            from .. import events
            from ..factory import build_service

            self._service = build_service(kind="cli", register=False)
            events.emit(events.cli_service_ready, self, service=self._service)
        return self._service

    @property
    def settings(self) -> Settings:
        """The settings commands read (the service's once built; no store is touched)."""
        if self._service is not None:
            return self._service.settings
        return Settings.from_env()

    def actor(self, name: str | None = None) -> Actor:
        """The operator running this command (``--by``, else ``default_actor()``): the
        CLI runs with the deployment's credentials, so it has every right."""
        return Actor.operator(name or default_actor(), "cli")

    def invalidator(self) -> Any:
        """How this CLI logs non-admins out: the session store the web app registered."""
        return None  # the command's default: ``session_invalidation.invalidator``

    def emit(self, data: Any, human: str | None = None) -> None:
        """Print ``data`` as JSON under ``--json``, else ``human`` text."""
        if self.as_json or human is None:
            click.echo(json.dumps(data, indent=2, default=str, sort_keys=True))
        else:
            from .render import terminal_lines

            click.echo(terminal_lines(human))


def default_actor() -> str:
    """Who runs the CLI: ``MAINTENANCE_ACTOR``, else the OS user, marked as CLI."""
    who = os.environ.get("MAINTENANCE_ACTOR") or os.environ.get("USER") or "operator"
    return f"{who} (cli)"


pass_ctx = click.make_pass_decorator(CliContext, ensure=True)


#: ``--mode`` of the commands that switch maintenance on (default ``normal``).
mode_option = click.option(
    "--mode",
    type=click.Choice([m.value for m in MaintenanceMode], case_sensitive=False),
    default="normal",
    show_default=True,
)


def json_option(f: Any) -> Any:
    """``--json`` on a subcommand too (``maintenance status --json``)."""

    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(CliContext).as_json = True

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=callback,
        help="Machine-readable output.",
    )(f)
