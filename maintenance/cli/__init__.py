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

from ..errors import (
    ConflictError,
    MaintenanceError,
    NotAuthorized,
    StoreUnavailable,
    ValidationError,
)
from .context import CliContext, pass_ctx  # noqa: F401  (re-exported for plugins)
from .notify import notify
from .reports import rehearsal, report
from .state import db, disable, enable, history, nodes, status

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
    click.echo(f"maintenance: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI with one-line errors and meaningful exit codes.

    0 ok; 1 operation failed (store down, timeout); 2 bad input; 3 conflict
    (another administrator changed the state first).
    """
    _load_plugins()
    args = sys.argv[1:] if argv is None else argv
    if not args:
        args = ["--help"]
    try:
        code = cli.main(args=args, prog_name="maintenance", standalone_mode=False)
    except click.UsageError as exc:
        _fail(exc.format_message().splitlines()[0], EXIT_USAGE)
    except click.Abort:
        _fail("aborted", EXIT_FAILURE)
    except (ValidationError, NotAuthorized) as exc:
        _fail(str(exc), EXIT_USAGE)
    except ConflictError as exc:
        _fail(f"conflict: {exc}", EXIT_CONFLICT)
    except StoreUnavailable as exc:
        _fail(str(exc), EXIT_FAILURE)
    except MaintenanceError as exc:
        _fail(str(exc), EXIT_FAILURE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
