"""The servers the capacity test runs its app on, each with the settings docs/deployment.md
gives for it, and what each should do with streams: the threaded ones hold a few (the
rest poll), sync workers hold none (everyone polls), gevent workers hold them all."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from maintenance.embedded import free_port
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.web.capacity_wsgi:application"
UWSGI = shutil.which("uwsgi", path=str(Path(sys.executable).parent)) or shutil.which("uwsgi")
START_TIMEOUT = 120.0  # a loaded machine imports slowly; only a deadline


@dataclass(frozen=True)
class ServerModel:
    """How to start one server on a port, and what its streams should do.

    ``streams``: ``"capped"`` (a few held per process, the rest told to poll), ``"none"``
    (every stream refused: a stream would hold the whole process), ``"all"`` (all held).
    """

    name: str
    argv: tuple[str, ...]
    streams: str
    #: The stream caps the guide gives for this server (none: the detected defaults).
    caps: tuple[int, int] | None = None

    def environ(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        if self.caps is not None:
            users, admins = self.caps
            env.update(MAINTENANCE_SSE_MAX_STREAMS=str(users))
            env.update(MAINTENANCE_SSE_MAX_ADMIN_STREAMS=str(admins))
        return env

    def command(self, port: int) -> list[str]:
        values = {"port": port, "python": sys.executable, "prefix": sys.prefix}
        return [part.format(**values) for part in self.argv]


def gunicorn(worker: str, *options: str) -> tuple[str, ...]:
    return (
        "{python}", "-m", "gunicorn", "-k", worker, "-w", "2", *options,
        "--backlog", "2048", "--graceful-timeout", "2", "--log-level", "warning",
        "-b", "127.0.0.1:{port}", APP,
    )  # fmt: skip


WAITRESS = ServerModel(
    "waitress", ("{python}", "-m", "tests.web.capacity_server", "8", "{port}"), "capped"
)
GUNICORN_SYNC = ServerModel("gunicorn-sync", gunicorn("sync"), "none")
GUNICORN_GTHREAD = ServerModel(
    "gunicorn-gthread",
    gunicorn("gthread", "--threads", "4", "--worker-connections", "1000", "--keep-alive", "10"),
    "capped",
    caps=(1, 1),  # 4 threads: streams at most half of them, whoever holds them
)
GUNICORN_GEVENT = ServerModel(
    "gunicorn-gevent",
    gunicorn("gevent", "--worker-connections", "1000", "--keep-alive", "10"),
    "all",
)
UWSGI_THREADS = ServerModel(
    "uwsgi",
    (
        UWSGI or "uwsgi", "--master", "--processes", "2", "--threads", "4", "--lazy-apps",
        "--http-socket", "127.0.0.1:{port}", "--listen", "1024", "--home", "{prefix}",
        "--module", APP, "--need-app", "--die-on-term", "--disable-logging",
    ),
    "capped",
    caps=(1, 1),
)  # fmt: skip
UWSGI_GEVENT = ServerModel(
    "uwsgi-gevent",
    (
        UWSGI or "uwsgi", "--master", "--processes", "2", "--gevent", "1000",
        "--gevent-early-monkey-patch", "--lazy-apps",
        "--http-socket", "127.0.0.1:{port}", "--listen", "1024", "--home", "{prefix}",
        "--module", APP, "--need-app", "--die-on-term", "--disable-logging",
    ),
    "all",
)  # fmt: skip

slow = pytest.mark.slow
no_uwsgi = pytest.mark.skipif(
    UWSGI is None,
    reason="uwsgi is not installed (pip install uwsgi builds it; it needs gcc and Python headers)",
)

#: waitress and gunicorn sync by default (a threaded pool, and a server that cannot hold
#: streams at all); the other servers with the slow suites.
SERVERS = [
    pytest.param(WAITRESS, id="waitress"),
    pytest.param(GUNICORN_SYNC, id="gunicorn-sync"),
    pytest.param(GUNICORN_GTHREAD, id="gunicorn-gthread", marks=slow),
    pytest.param(GUNICORN_GEVENT, id="gunicorn-gevent", marks=slow),
    pytest.param(UWSGI_THREADS, id="uwsgi", marks=[slow, no_uwsgi]),
    pytest.param(UWSGI_GEVENT, id="uwsgi-gevent", marks=[slow, no_uwsgi]),
]


def answers(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/api/maintenance/status"
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def serve(model: ServerModel, env: dict[str, str]) -> Iterator[int]:
    """Start ``model`` in a process group of its own, yield its port once it answers, stop it."""
    port = free_port()
    proc = subprocess.Popen(
        model.command(port),
        cwd=ROOT,
        env=model.environ(env),
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: proc.poll() is not None or answers(port),
            timeout=START_TIMEOUT,
            interval=0.2,
            what=f"{model.name} to answer on port {port}",
        )
        assert proc.poll() is None, f"{model.name} exited with {proc.returncode}"
        yield port
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's group, then SIGKILL to whatever of it is left."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
    with contextlib.suppress(ProcessLookupError):  # nothing left of the group
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)
