"""The emergency watch's progress: one line rewritten in place on a terminal (a real
pty), plain lines when piped -- the CLI's own ``_Progress`` fed real progress values."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

from tests.celery.conftest import ROOT

SCRIPT = r"""
import time
from maintenance.emergency import EmergencyProgress
from signals.emergency_cli import _Progress

now = time.time()
plan = {"sigterm_at": now + 30, "kill_at": now + 35}
watch = _Progress()
job = {"task_id": "t1"}
steps = [
    ("grace", [job], {}, now),
    ("grace", [job], {}, now + 1),
    ("grace", [job], {}, now + 2),
    ("grace", [], {"aborted": 1}, now + 3),
    ("terminated", [], {"aborted": 1}, now + 3),
]
for phase, running, counts, at in steps:
    watch(EmergencyProgress("e1", True, phase, plan, counts, running, [], now=at))
watch.end()
print("done")
"""


def _run_piped() -> str:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _run_in_pty() -> bytes:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed its side
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, b"".join(chunks)
    return b"".join(chunks)


def test_piped_progress_is_plain_lines_one_per_change() -> None:
    lines = _run_piped().splitlines()
    assert lines == [
        "[grace] running 1 · stopped cooperatively 0 · terminated 0 · killed 0",
        "[grace] running 0 · stopped cooperatively 1 · terminated 0 · killed 0",
        "[terminated] running 0 · stopped cooperatively 1 · terminated 0 · killed 0",
        "done",
    ]


def test_on_a_terminal_progress_is_one_line_rewritten_in_place() -> None:
    raw = _run_in_pty().decode()
    screen = raw.replace("\r\n", "\n")
    live, _, rest = screen.partition("\n")
    # Every state rewrote the same line: carriage return + erase-line, no newline between.
    updates = live.split("\r\x1b[K")[1:]
    assert [u.split(" · ")[0] for u in updates] == [
        "[grace] grace 30s left, running 1",
        "[grace] grace 29s left, running 1",
        "[grace] grace 28s left, running 1",
        "[grace] grace 27s left, running 0",
        "[terminated] running 0",
    ]
    assert rest.strip() == "done"  # the line was ended once, then normal output
