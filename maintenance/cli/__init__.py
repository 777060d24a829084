"""The ``maintenance`` command line (Click); also mounted as ``flask maintenance``.

Commands from other packages (Celery-side jobs, drain, emergency, demo) are
plugged in through the ``maintenance.cli`` entry-point group, so the core
never imports them.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import click
from sqlalchemy.exc import SQLAlchemyError

from ..errors import (
    ConflictError,
    MaintenanceError,
    NotAuthorized,
    ValidationError,
)
from ..redisconn import REDIS_ERRORS, describe_redis_error
from .context import CliContext, pass_ctx  # noqa: F401  (re-exported for plugins)
from .db import db
from .notify import notify
from .render import terminal_safe
from .reports import rehearsal, report
from .state import disable, enable, history, nodes, status

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_CONFLICT = 0, 1, 2, 3


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("-v", "--verbose", count=True, help="Show the control plane's log (-vv: debug).")
@click.pass_context
def cli(ctx: click.Context, as_json: bool, verbose: int) -> None:
    """Control maintenance mode for a Flask + Celery fleet."""
    # Commands print what happened themselves; the log (what servers keep) would say it
    # twice. Errors still show; -v shows the rest.
    level = {0: logging.ERROR, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="maintenance: %(levelname)s: %(message)s")
    logging.getLogger().setLevel(level)
    ctx.obj = CliContext(as_json=as_json)


for command in (status, enable, disable, history, nodes, db, report, rehearsal, notify):
    cli.add_command(command)


def _load_plugins() -> None:
    for ep in entry_points(group="maintenance.cli"):
        try:
            cli.add_command(ep.load(), ep.name)
        except Exception as exc:  # a broken plugin must not take the CLI down
            click.echo(f"warning: command {ep.name!r} unavailable: {exc}", err=True)


def _fail(message: str, code: int) -> None:
    click.echo(f"maintenance: error: {terminal_safe(message)}", err=True)
    sys.exit(code)


def _not_utf8(args: list[str]) -> int | None:
    """The position of the first argument that is not valid UTF-8 (Python reads such
    bytes as lone surrogates), else None."""
    for position, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return position
    return None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def failure(exc: BaseException) -> tuple[str, int] | None:
    """The one line and exit code a CLI failure ends with (None: not one of ours).

    0 ok; 1 operation failed (store down, timeout); 2 bad input; 3 conflict
    (another administrator changed the state first).
    """
    if isinstance(exc, click.UsageError):
        return exc.format_message().splitlines()[0], EXIT_USAGE
    if isinstance(exc, click.Abort):
        return "aborted", EXIT_FAILURE
    if isinstance(exc, ValidationError | NotAuthorized):
        return str(exc), EXIT_USAGE
    if isinstance(exc, ConflictError):
        return f"conflict: {exc}", EXIT_CONFLICT
    if isinstance(exc, MaintenanceError):  # StoreUnavailable among them
        return str(exc), EXIT_FAILURE
    if isinstance(exc, REDIS_ERRORS):  # a command that did not say what Redis cost it
        return f"Redis unavailable: {describe_redis_error(exc)}", EXIT_FAILURE
    if isinstance(exc, SQLAlchemyError):  # e.g. the schema check with SQL unreachable
        return f"SQL store unavailable: {_first_line(exc)}", EXIT_FAILURE
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI with one-line errors and meaningful exit codes.

    0 ok; 1 operation failed (store down, timeout); 2 bad input; 3 conflict
    (another administrator changed the state first).
    """
    _load_plugins()
    args = sys.argv[1:] if argv is None else argv
    if not args:
        args = ["--help"]
    bad = _not_utf8(args)
    if bad is not None:
        _fail(f"argument {bad} is not valid UTF-8", EXIT_USAGE)
    try:
        code = cli.main(args=args, prog_name="maintenance", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        known = failure(exc)
        if known is None:
            raise
        _fail(*known)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
