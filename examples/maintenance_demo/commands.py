"""How to type ``maintenance`` in the terminal the demo was started from."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def _executable(argv0: str) -> Path | None:
    """The ``maintenance`` script that is running, else the one beside this Python."""
    started = Path(argv0)
    if started.name == "maintenance" and started.is_file():
        return started.absolute()
    on_path = shutil.which("maintenance")
    if on_path:
        return Path(on_path).absolute()
    beside = Path(sys.executable).with_name("maintenance")
    return beside.absolute() if beside.is_file() else None


def maintenance_command(argv0: str | None = None, cwd: Path | None = None) -> str:
    """``maintenance`` when that name finds this very script on ``PATH``; otherwise
    its path, relative to ``cwd`` when it lies below it (``.venv/bin/maintenance``)."""
    found = _executable(sys.argv[0] if argv0 is None else argv0)
    if found is None:
        return "maintenance"
    on_path = shutil.which("maintenance")
    if on_path and Path(on_path).resolve() == found.resolve():
        return "maintenance"
    here = (cwd or Path.cwd()).absolute()
    if found.is_relative_to(here):
        relative = os.path.relpath(found, here)
        return shlex.quote(relative if os.sep in relative else f".{os.sep}{relative}")
    return shlex.quote(str(found))


def has_command(name: str) -> bool:
    """Whether ``maintenance NAME`` exists here (plugins included)."""
    from importlib.metadata import entry_points

    from maintenance.cli import cli

    return name in cli.commands or any(
        ep.name == name for ep in entry_points(group="maintenance.cli")
    )


def maintenance_argv() -> list[str]:
    """How to start ``maintenance`` as a child process."""
    found = _executable(sys.argv[0])
    if found is not None:
        return [str(found)]
    return [sys.executable, "-c", "from maintenance.cli import main; main()"]
