"""Start child processes in process groups of their own and stop every one of them.

Each child leads a new session, so a terminal's Ctrl-C reaches only the
launcher, which stops the children in order: SIGTERM to each leader (a Celery
worker then shuts its pool down warm), SIGKILL to whatever is left in its
group after the grace period (pool children included). Nothing is orphaned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Child:
    """One started process (the leader of its process group)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The leader's pid, which is also the group id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the leader still runs."""
        return self.proc.poll() is None

    def group_alive(self) -> bool:
        """Whether any process of the group still exists."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def tail(self, lines: int = 15) -> str:
        """The end of the child's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Supervisor:
    """Owns the children; ``stop`` leaves none behind."""

    def __init__(self, env: dict[str, str], log_dir: Path, cwd: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.cwd = cwd
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str]) -> Child:
        """Start ``argv`` as ``name``, output to ``<log_dir>/<name>.log``."""
        log = self.log_dir / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def first_dead(self) -> Child | None:
        """A child whose leader exited, if any."""
        return next((c for c in self.children if not c.alive()), None)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every leader, wait up to ``grace`` seconds, SIGKILL every group, reap."""
        for child in reversed(self.children):
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(max(0.0, deadline - time.monotonic()))
        for child in self.children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(10)
        # A group can outlive its leader for a moment (pool children being killed).
        deadline = time.monotonic() + 10
        while any(c.group_alive() for c in self.children) and time.monotonic() < deadline:
            time.sleep(0.05)
