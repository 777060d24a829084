"""A real ``celery flower`` process on a fleet's broker, and what its HTTP API says."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from tests.helpers import wait_for
from tests.services import free_port

from .conftest import ROOT, Fleet


def get(url: str) -> Any:
    """The JSON at ``url`` (None: Flower does not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def task_info(base: str, task_id: str) -> dict[str, Any]:
    """Flower's ``/api/task/info`` of ``task_id`` (empty: unknown to Flower)."""
    info = get(f"{base}/api/task/info/{task_id}")
    return info if isinstance(info, dict) else {}


def task_state(base: str, task_id: str) -> str | None:
    """The state Flower shows for ``task_id``."""
    return task_info(base, task_id).get("state")


@contextlib.contextmanager
def running_flower(fleet: Fleet) -> Iterator[str]:
    """``celery flower`` on the fleet's broker, its HTTP API on a loopback port (the base URL)."""
    port = free_port()
    log = fleet.directory / f"flower-{port}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            fleet.app_module,
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
        ],
        cwd=ROOT,
        env={**fleet.env, "FLOWER_UNAUTHENTICATED_API": "true"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(f"{base}/api/tasks") is not None, 60, 0.2, "Flower's API")
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_until_listening(base: str, publish_probe: Callable[[str], str]) -> None:
    """Flower follows events over pub/sub, and its API answers before its event consumer
    listens: a probe job it saw succeed proves it is listening (sent again until seen).
    ``publish_probe(label)`` publishes a job that succeeds and returns its id."""
    probes: list[str] = []

    def saw_a_probe() -> bool:
        if any(task_state(base, p) == "SUCCESS" for p in probes):
            return True
        if len(probes) < 60:
            probes.append(publish_probe(f"probe-{uuid.uuid4().hex[:6]}"))
        return False

    wait_for(saw_a_probe, 60, 0.5, "Flower live")
