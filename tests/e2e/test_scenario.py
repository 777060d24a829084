"""``maintenance demo --scenario`` end to end: the narrated walkthrough passes every step
on real processes, and leaves no process behind -- also when it is interrupted."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.captioner.conftest import ROOT
from tests.helpers import wait_for
from tests.support import MAINTENANCE_CLI

pytestmark = pytest.mark.slow
STEPS = (
    "Start the fleet",
    "Jobs running",
    "Normal maintenance",
    "Drain",
    "Disable with requeue",
    "Emergency",
    "Recovery",
    "Report",
)


def _processes_with(marker: str) -> set[int]:
    """Pids of live processes whose environment contains ``marker`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "environ").read_bytes():
                stat = (entry / "stat").read_text()
                if stat[stat.rindex(")") + 2] != "Z":
                    found.add(int(entry.name))
    return found


@contextlib.contextmanager
def scenario(
    redis_url: str, prefix: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``maintenance demo --scenario`` on the test Redis (own prefix) and SQLite, output
    to a file; killed with its whole session if it is still running afterwards."""
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "MAINTENANCE_DATABASE_URL": f"sqlite:///{tmp_path / 'maintenance.db'}",
        "MAINTENANCE_DATA_DIR": str(tmp_path / ".maintenance"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("CELERY_BROKER_KEYPREFIX", None)
    out = tmp_path / "scenario.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [MAINTENANCE_CLI, "demo", "--scenario"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc, out
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in _processes_with(prefix):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_scenario_passes_every_step_and_leaves_no_process(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """The walkthrough exits 0; its summary lists the eight steps, each ok; the emergency
    report is written as Markdown and HTML; no process it started is left running."""
    with scenario(redis_url, prefix, tmp_path) as (proc, out):
        code = proc.wait(240)
        text = out.read_text()
        assert code == 0, text[-6000:]
        assert "Every step behaved." in text
        rows = re.findall(r"^\| (\d)\. (.+?) +\|.*\| (\S+) +\|$", text, re.MULTILINE)
        assert [(n, title, ok) for n, title, ok in rows] == [
            (str(i), title, "yes") for i, title in enumerate(STEPS, 1)
        ]
        assert "  \u2717 " not in text  # no observation went wrong
        reports = sorted(p.suffix for p in (tmp_path / ".maintenance").rglob("emergency-report-*"))
        assert reports == [".html", ".md"]
        assert not _processes_with(prefix)


def test_interrupted_scenario_stops_every_process_it_started(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """SIGINT while jobs run (as Ctrl-C would): the scenario says it was interrupted, stops
    the web app, workers (pool children included) and beat, and exits 130."""
    with scenario(redis_url, prefix, tmp_path) as (proc, out):
        wait_for(
            lambda: proc.poll() is not None or "all 4 are running" in out.read_text(),
            120,
            0.2,
            "the jobs to run",
        )
        assert proc.poll() is None, out.read_text()[-4000:]
        assert len(_processes_with(prefix)) >= 8  # web, 2 workers + 4 pool children, beat
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130, out.read_text()[-4000:]
        text = out.read_text()
        assert "Interrupted." in text and "no process of the scenario is left running" in text
        assert not _processes_with(prefix)
