"""Run the ``maintenance`` CLI in a child process against a test's own stores."""

from __future__ import annotations

import subprocess
import sys


def run_cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from maintenance.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
    )
