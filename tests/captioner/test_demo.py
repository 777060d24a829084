"""``maintenance demo``: the whole fleet starts, answers, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.support import MAINTENANCE_CLI

from .conftest import ROOT

pytestmark = pytest.mark.slow


def _group_members(pgids: set[int]) -> set[int]:
    """Every process whose process group is one of ``pgids`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) in pgids:  # state, ppid, pgrp
                found.add(int(entry.name))
    return found


def _at_least(n: int, pids: set[int]) -> set[int]:
    return pids if len(pids) >= n else set()


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def test_demo_starts_the_fleet_and_sigint_stops_every_process(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """The demo prints its URLs (the admin panel's among them), the logins and commands
    that work from its directory once the web app answers and both prefork
    workers are up; SIGINT stops the web server, the workers and their pool children
    and beat: not one of their pids is left."""
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "CELERY_BROKER_KEYPREFIX": f"{prefix}:broker:",
        "MAINTENANCE_DATABASE_URL": f"sqlite:///{tmp_path / 'maintenance.db'}",
        "MAINTENANCE_DATA_DIR": str(tmp_path / ".maintenance"),
        "PYTHONPATH": str(ROOT),
    }
    out = tmp_path / "demo.out"
    with open(out, "wb") as sink:
        demo = subprocess.Popen(
            [MAINTENANCE_CLI, "demo", "--port", "0", "--no-flower", "--concurrency", "1"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    state_file = tmp_path / ".maintenance" / "demo" / "demo.json"
    pgids: set[int] = set()
    try:
        wait_for(
            lambda: demo.poll() is not None or "Maintenance demo is running." in out.read_text(),
            90,
            0.2,
            "the demo to come up",
        )
        text = out.read_text()
        assert demo.poll() is None, text
        state = json.loads(state_file.read_text())
        assert _answers(state["web_url"] + "/health")
        assert "admin / admin-demo-pass" in text and "alice / alice-demo-pass" in text
        assert state["web_url"] + "/admin/" in text
        assert state["web_url"] + "/admin/maintenance/" in text
        # The banner's commands work as printed from the directory the demo started in.
        printed = re.search(r"^  (\S*maintenance) status$", text, re.MULTILINE)
        assert printed is not None, text
        typed = subprocess.run(
            [*shlex.split(printed.group(1)), "status"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert typed.returncode == 0 and "Maintenance:   off" in typed.stdout, typed.stderr
        pgids = set(state["children"].values())
        assert set(state["children"]) == {"web", "w1", "w2", "beat"}
        # web, beat, two worker main processes and (once forked) their pool children
        pids = wait_for(lambda: _at_least(6, _group_members(pgids)), 30, 0.1, "pool children")

        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0, out.read_text()
        assert "Demo stopped; no process left running." in out.read_text()
        wait_for(lambda: not any(_exists(p) for p in pids), 10, 0.05, "every child to be gone")
        assert not state_file.exists()
    finally:
        for pgid in pgids | {demo.pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            demo.wait(10)
