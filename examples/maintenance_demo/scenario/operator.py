"""The operator: types ``maintenance`` commands, as in a terminal, against the scenario's fleet."""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from ..commands import maintenance_argv, maintenance_command
from .narrator import Narrator


@dataclass
class Typed:
    """A command's exit status and everything it printed."""

    code: int
    output: str


class Operator:
    """Runs ``maintenance ...`` with the fleet's environment and shows what it printed."""

    def __init__(self, narrator: Narrator, env: dict[str, str], timeout: float = 120.0) -> None:
        self.narrator = narrator
        self.env = env
        self.timeout = timeout
        self.argv = maintenance_argv()
        self.shown = maintenance_command()

    def run(self, *args: str, show: bool = True) -> Typed:
        """Run ``maintenance ARGS`` (stdout and stderr together); ``show``: print the command
        and its output like a terminal."""
        done = subprocess.run(
            [*self.argv, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=self.timeout,
            check=False,
        )
        output = done.stdout.decode(errors="replace")
        if show:
            self.narrator.command(self.line(*args), output, done.returncode)
        return Typed(done.returncode, output)

    def line(self, *args: str) -> str:
        """The command as the operator would type it."""
        return f"{self.shown} {shlex.join(args)}"
