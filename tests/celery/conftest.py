"""Fixtures: a fleet of real ``celery worker`` processes (prefork) on the real Redis broker.

One fleet per test session: two workers ``w1``/``w2`` (``-P prefork -c 2``)
loading ``tests.celery.app`` configured from the top-level ``celeryconfig``
with everything passed through the environment -- broker keys under their
own ``global_keyprefix``, maintenance keys under their own prefix, their own
SQLite file. The test process has its own registered node (the service
tests enable and disable with) and a publisher app with the hooks installed.
Readiness is a condition (broadcast ping answered and the worker registered
as a node), never a sleep; every process started here is killed and reaped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from celery import Celery
from celery.events.state import State

import signals
from maintenance import EnhancedMaintenanceModeService, Settings, build_service
from maintenance.store import schema
from tests.helpers import wait_for
from tests.services import shared_redis_url

from .app import make_app, register_tasks

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()
ADMIN = {"username": "root", "role": "admin"}


@dataclass
class WorkerProcess:
    """One ``celery worker`` subprocess (its own process group)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def nodename(self) -> str:
        return f"{self.name}@{HOST}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (main process and pool children)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """Warm shutdown, then SIGKILL if it lingers; always reaped."""
        self.kill(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.proc.wait(10)
        # Pool children that outlived their parent go with the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Fleet:
    """Everything a Celery integration test needs."""

    prefix: str
    broker_prefix: str
    default_queue: str
    env: dict[str, str]
    config: dict[str, Any]
    settings: Settings
    service: EnhancedMaintenanceModeService
    app: Celery
    tasks: dict[str, Any]
    client: redis.Redis
    directory: Path
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    #: What ``start_worker`` runs (other suites start fleets of their own apps).
    app_module: str = "tests.celery.app"
    concurrency: int = 2

    # -- side effects --------------------------------------------------------
    def runs(self, label: str) -> int:
        """How many times the task labelled ``label`` ran."""
        return int(self.client.get(f"{self.prefix}:runs:{label}") or 0)

    def started(self, label: str) -> bool:
        """Whether the task labelled ``label`` has started."""
        return bool(self.client.exists(f"{self.prefix}:started:{label}"))

    def release(self, hold: str) -> None:
        """Let every task held on ``hold`` finish."""
        self.client.set(f"{self.prefix}:release:{hold}", 1)

    def queue_captions(self, name: str, count: int) -> tuple[str, list[str], list[str]]:
        """``count`` caption jobs published (with the gate) to a new queue ``name``-...
        nothing consumes yet: the queue, the jobs' labels and their ids, in order."""
        queue = f"{self.prefix}-{name}-{uuid.uuid4().hex[:6]}"
        caption = self.tasks["generate_caption"]
        tag = uuid.uuid4().hex[:6]
        labels = [f"{name}{i:05d}-{tag}" for i in range(count)]
        with self.app.producer_or_acquire() as producer, producer.batch(max_size=1000):
            ids = [
                caption.apply_async((label,), queue=queue, producer=producer).id for label in labels
            ]
        return queue, labels, ids

    # -- broker probes -------------------------------------------------------
    def queue_length(self, queue: str) -> int:
        """Messages waiting in ``queue`` (every priority sub-list)."""
        client = self.client
        total = 0
        for name in client.scan_iter(f"{self.broker_prefix}{queue}*", count=500):
            if client.type(name) == b"list":
                total += int(client.llen(name))
        return total

    def unacked(self) -> int:
        """Messages delivered to a worker and not yet acknowledged."""
        return int(self.client.hlen(f"{self.broker_prefix}unacked"))

    def queued_messages(self, queue: str) -> list[dict[str, Any]]:
        """The raw messages waiting in ``queue`` (as kombu stored them)."""
        raw = self.client.lrange(f"{self.broker_prefix}{queue}", 0, -1)
        return [json.loads(m) for m in raw]

    # -- the maintenance CLI -------------------------------------------------
    def cli(self, *args: str) -> subprocess.Popen[str]:
        """Start ``maintenance *args`` against this fleet (stdout/stderr piped, text)."""
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("maintenance")), *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # -- workers -------------------------------------------------------------
    def start_worker(
        self,
        name: str,
        queues: list[str],
        pool: str = "prefork",
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        """Start ``name`` consuming ``queues`` (``env``: variables to change for it);
        return once it answers and is registered."""
        log = self.directory / f"{name}.log"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                self.app_module,
                "worker",
                "-P",
                pool,
                "-c",
                "1" if pool == "solo" else str(self.concurrency),
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
                "-E",
                "-Q",
                ",".join(queues),
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = WorkerProcess(name, proc, log)
        self.workers[name] = worker
        try:
            wait_for(
                lambda: self._ready(worker), timeout=60, interval=0.2, what=f"worker {name} ready"
            )
        except AssertionError:
            worker.stop()
            raise AssertionError(f"worker {name} did not start:\n{worker.tail()}") from None
        return worker

    def _ready(self, worker: WorkerProcess) -> bool:
        if not worker.alive():
            raise AssertionError(f"worker {worker.name} exited:\n{worker.tail()}")
        nodes = self.service.nodes()
        registered = any(
            n.kind == "worker" and n.info.get("hostname") == worker.nodename for n in nodes.values()
        )
        if not registered:
            return False
        replies = self.app.control.ping(destination=[worker.nodename], timeout=0.5)
        return any(worker.nodename in reply for reply in replies)

    def stop_all(self) -> None:
        for worker in self.workers.values():
            worker.stop()

    # -- state between tests -------------------------------------------------
    def reset(self) -> None:
        """Maintenance off (nothing requeued), no leftover held-back jobs or holds."""
        current = self.service.state.load()
        if current.is_active:
            self.service.disable_maintenance("test-reset", requeue=False)
        elif current.recovery_pending:
            self.service.update_status("test-reset", "test_reset", recovery_pending=False)
        with self.service.db.begin() as conn:
            conn.execute(sa.delete(schema.jobs))
            conn.execute(sa.delete(schema.windows))
        for name in self.client.scan_iter(f"{self.prefix}:release:*", count=500):
            self.client.delete(name)


_DUMP_CONFIG = """
import json, celeryconfig
plain = (str, int, float, bool, dict, list, tuple, type(None))
print(json.dumps({k: v for k, v in vars(celeryconfig).items()
                  if k.islower() and not k.startswith("_") and isinstance(v, plain)}))
"""


def _celery_config(env: dict[str, str]) -> dict[str, Any]:
    """The settings ``celeryconfig.py`` produces for ``env`` -- read in a subprocess, so
    this process never runs its hook installation."""
    out = subprocess.run(
        [sys.executable, "-c", _DUMP_CONFIG],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return dict(json.loads(out.stdout))


def fleet_environment(directory: Path, prefix: str) -> dict[str, str]:
    """Environment for a fleet under ``prefix`` with its files in ``directory``."""
    redis_url = shared_redis_url()
    env = {
        **os.environ,
        "TEST_CELERY_WORKER": "1",
        "TEST_COUNTER_PREFIX": prefix,
        "TEST_COUNTER_URL": redis_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_BROKER_KEYPREFIX": f"{prefix}:b:",
        "CELERY_DEFAULT_QUEUE": f"{prefix}-default",
        "CELERY_PREFETCH_MULTIPLIER": "4",
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "MAINTENANCE_DATABASE_URL": f"sqlite:///{directory / 'maintenance.db'}",
        "MAINTENANCE_DATA_DIR": str(directory / "data"),
        "MAINTENANCE_REVALIDATE_INTERVAL": "0.2",
        "MAINTENANCE_SQL_CHECK_INTERVAL": "0.5",
        "MAINTENANCE_HEARTBEAT_INTERVAL": "0.2",
        "MAINTENANCE_NODE_TTL": "1.0",
        "MAINTENANCE_ENABLE_WAIT": "5.0",
        "MAINTENANCE_BEAT_INTERVAL": "3600",
        "MAINTENANCE_ACTOR": "pytest",
        "PYTHONPATH": str(ROOT),
    }
    env["TEST_FLEET_DIR"] = str(directory)
    return env


def delete_prefix(redis_url: str, prefix: str) -> None:
    """Remove every key a fleet left under ``prefix``."""
    client = redis.Redis.from_url(redis_url)
    names = list(client.scan_iter(f"{prefix}*", count=1000))
    for start in range(0, len(names), 500):
        client.delete(*names[start : start + 500])


@pytest.fixture(scope="session")
def fleet_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment shared by the workers, the CLI subprocesses and the test process."""
    prefix = f"tc{uuid.uuid4().hex[:8]}"
    env = fleet_environment(tmp_path_factory.mktemp("celery-fleet"), prefix)
    yield env
    delete_prefix(env["REDIS_URL"], prefix)


def open_fleet(fleet_env: dict[str, str], *, kind: str = "web", **fields: Any) -> Fleet:
    """The test process's side of a fleet (service registered as ``kind``, publisher app);
    no workers yet."""
    settings = Settings.from_env(fleet_env)
    service = build_service(settings, kind=kind).start()
    config = _celery_config(fleet_env)
    app = Celery("maintenance_tests_publisher", set_as_current=False)
    app.conf.update(config)
    tasks = register_tasks(app)
    signals.install(app, service)
    return Fleet(
        prefix=fleet_env["TEST_COUNTER_PREFIX"],
        broker_prefix=fleet_env["CELERY_BROKER_KEYPREFIX"],
        default_queue=fleet_env["CELERY_DEFAULT_QUEUE"],
        env=fleet_env,
        config=config,
        settings=settings,
        service=service,
        app=app,
        tasks=tasks,
        client=redis.Redis.from_url(fleet_env["TEST_COUNTER_URL"]),
        directory=Path(fleet_env["TEST_FLEET_DIR"]),
        **fields,
    )


def close_fleet(fleet: Fleet) -> None:
    """Stop and reap every worker; close the service."""
    fleet.stop_all()
    fleet.service.close()
    fleet.service.db.dispose()


@pytest.fixture(scope="session")
def fleet(fleet_env: dict[str, str]) -> Iterator[Fleet]:
    """Two prefork workers consuming the default queue, plus the test process's side."""
    fleet = open_fleet(fleet_env)
    try:
        for name in ("w1", "w2"):
            fleet.start_worker(name, [fleet.default_queue])
        yield fleet
    finally:
        close_fleet(fleet)


@pytest.fixture
def clean_fleet(fleet: Fleet) -> Iterator[Fleet]:
    """The session fleet, reset before and after the test."""
    fleet.reset()
    yield fleet
    fleet.reset()


@pytest.fixture
def probe_app(fleet: Fleet) -> Iterator[tuple[Celery, str]]:
    """A gated publisher whose default queue no worker consumes (to count what got through)."""
    queue = f"{fleet.prefix}-probe-{uuid.uuid4().hex[:6]}"
    app = make_app({**fleet.config, "task_default_queue": queue})
    signals.install(app, fleet.service)
    yield app, queue
    for name in fleet.client.scan_iter(f"{fleet.broker_prefix}{queue}*", count=500):
        fleet.client.delete(name)


@contextlib.contextmanager
def watch_events(fleet: Fleet) -> Iterator[State]:
    """Celery's event ``State`` (what Flower shows) fed by a real receiver on the broker.

    Ready once a worker heartbeat (sent every 2 s under ``-E``) came through the
    stream: events are broadcast (Redis pub/sub, an AMQP fanout), so anything sent
    before that is not seen.
    """
    state = State()
    holder: dict[str, Any] = {}

    def capture() -> None:
        with fleet.app.connection_for_read() as conn:
            receiver = fleet.app.events.Receiver(conn, handlers={"*": state.event})
            holder["receiver"] = receiver
            for _ in receiver.consume(limit=None, timeout=None, safety_interval=0.2):
                pass

    thread = threading.Thread(target=capture, name="event-capture", daemon=True)
    thread.start()
    wait_for(lambda: "receiver" in holder, timeout=10, what="event receiver")
    try:
        wait_for(
            lambda: any(w.alive for w in state.workers.values()),
            timeout=15,
            interval=0.05,
            what="a worker heartbeat through the event stream",
        )
        yield state
    finally:
        holder["receiver"].should_stop = True
        thread.join(10)


@pytest.fixture
def event_state(fleet: Fleet) -> Iterator[State]:
    """Celery's event ``State`` of the session fleet (``watch_events``)."""
    with watch_events(fleet) as state:
        yield state
