"""A backlog through a maintenance window: 100,000 queued jobs of a blocked type, on the
Redis broker and on RabbitMQ, with PostgreSQL as the SQL store.

One prefork worker (``-c 1``: the order jobs run in is the order they start) consumes two
queues of ``bench/support/backlog_app.py``: ``held`` (only blocked work is routed there,
``MAINTENANCE_HOLD_QUEUES=auto``) and ``mixed`` (blocked and allowed work). The backlog
is published as real Celery task messages (``as_task_v2`` + ``send_task_message``, one
producer batch per 1,000) behind a job that occupies the pool, so it is queued when the
window opens. Then, per broker:

* hold: fenced enable -> the worker holds ``held`` (its consumer cancelled, what it had
  prefetched back at the head) and the whole backlog waits in the broker: goal <= 30 s;
* resume: disable -> the worker consumes ``held`` again and its first job has run:
  goal <= 30 s; the time until all of them ran is printed with its rate (not a goal:
  that is the worker's speed, not the window's);
* defer and requeue: the SQL deferral path of the ``mixed`` queue, at ``--mixed`` jobs
  (100,000): time from the enable until every one is recorded in SQL, and from the
  disable until it has republished them: goals <= 30 s each (on the Redis broker the
  worker takes the backlog from the queue in bulk, ``signals/redis_sweep.py``);
* lost, duplicated and out-of-order jobs of both paths, from the jobs' own record of
  what ran (a Redis list per queue): goals 0, 0 and 0.

Goals in bench/goals.py; each broker is measured once (no noise estimate) and the worst
broker is judged. Options: ``--jobs`` (100,000), ``--mixed`` (100,000), ``--brokers``
(``redis,rabbitmq``; RabbitMQ is skipped, saying so, where none answers), ``--short``
(2,000 and 200), ``--check``. Environment: ``REDIS_URL`` (else an embedded Redis),
``MAINTENANCE_DATABASE_URL`` (else a fresh schema in ``BENCH_POSTGRES_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``, else SQLite), ``BENCH_RABBITMQ_URL``
(``pyamqp://guest:guest@127.0.0.1:5672//``; queue names carry the run's prefix).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
import sqlalchemy as sa
from celery import Celery
from kombu import Connection

import signals
from bench._common import Report, bench_redis_url, delete_keys, parser, wait, wait_count
from bench.support.backlog_app import (
    CAPTION,
    CAPTION_MIXED,
    held_queue,
    mixed_queue,
    publish,
    ran_key,
    register,
)
from maintenance import EnhancedMaintenanceModeService, Settings, build_service
from maintenance.store.jobs import DEFERRED, JobStore
from workers.queue_hold import INFO_KEY

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RABBITMQ = os.environ.get("BENCH_RABBITMQ_URL", "pyamqp://guest:guest@127.0.0.1:5672//")


@contextlib.contextmanager
def database() -> Iterator[str]:
    """``MAINTENANCE_DATABASE_URL``; else a fresh PostgreSQL schema (dropped at the end);
    else, without a PostgreSQL server, a SQLite file."""
    explicit = os.environ.get("MAINTENANCE_DATABASE_URL")
    if explicit:
        yield explicit
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        engine = sa.create_engine(POSTGRES, connect_args={"connect_timeout": 2})
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        print(f"  PostgreSQL unavailable ({type(exc).__name__}); SQL store: SQLite", flush=True)
        yield f"sqlite:///{tempfile.mkdtemp(prefix='maintenance-bench-')}/bench.db"
        return
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def each_broker(brokers: str, redis_url: str) -> Iterator[tuple[str, str, str]]:
    """``(kind, broker URL, SQL URL)`` for each of the comma-separated ``brokers`` that
    answers (RabbitMQ is skipped, saying so, where none does). Each gets a SQL store of
    its own, as a deployment has: the second broker's run does not inherit the first
    one's rows (and their vacuum)."""
    for kind in [b.strip() for b in brokers.split(",") if b.strip()]:
        if kind == "rabbitmq" and not rabbitmq_reachable():
            print(f"  rabbitmq: skipped, nothing answers at {RABBITMQ}", flush=True)
            continue
        with database() as db_url:
            print(f"  SQL store: {db_url.split('?')[0].split('://')[0]}", flush=True)
            yield kind, redis_url if kind == "redis" else RABBITMQ, db_url


@dataclass
class Broker:
    """One broker the bench runs on."""

    kind: str
    url: str
    keyprefix: str = ""

    def length(self, queue: str) -> int:
        """Messages waiting in ``queue``."""
        if self.kind == "redis":
            return int(redis.Redis.from_url(self.url).llen(f"{self.keyprefix}{queue}"))
        with Connection(self.url) as conn:
            try:
                return int(conn.default_channel.queue_declare(queue, passive=True).message_count)
            except Exception:
                return 0

    def drop(self, queues: list[str]) -> None:
        """Delete ``queues`` (RabbitMQ; Redis keys go with the prefix)."""
        if self.kind == "rabbitmq":
            with contextlib.suppress(Exception), Connection(self.url) as conn:
                for queue in queues:
                    conn.default_channel.queue_delete(queue)


def rabbitmq_reachable() -> bool:
    try:
        with Connection(RABBITMQ, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


@dataclass
class Run:
    """What one broker measured (seconds; counts of jobs)."""

    broker: str
    jobs: int
    mixed: int
    publish: float = 0.0
    hold: float = 0.0
    resume: float = 0.0
    drain: float = 0.0
    defer: float = 0.0
    requeue: float = 0.0
    problems: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))


COUNTS = ("lost", "duplicated", "out_of_order")


def check(ran: list[int], expected: int) -> dict[str, int]:
    """Lost, run twice, and out of queue order, from the list of what ran."""
    seen: dict[int, int] = {}
    for seq in ran:
        seen[seq] = seen.get(seq, 0) + 1
    lost = sum(1 for seq in range(expected) if seq not in seen)
    duplicated = sum(n - 1 for n in seen.values() if n > 1)
    out_of_order = sum(1 for a, b in itertools.pairwise(ran) if b <= a)
    return {"lost": lost, "duplicated": duplicated, "out_of_order": out_of_order}


def start_worker(env: dict[str, str], name: str, queues: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.support.backlog_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            "1",
            "-n",
            f"{name}@%h",
            "-Q",
            ",".join(queues),
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def held_by(service: EnhancedMaintenanceModeService, hostname: str) -> list[str] | None:
    """The queues worker ``hostname`` says it holds (None: not registered)."""
    for node in service.nodes().values():
        if node.kind == "worker" and node.info.get("hostname") == hostname:
            return list(node.info.get(INFO_KEY) or [])
    return None


def run_broker(kind: str, url: str, redis_url: str, db_url: str, jobs: int, mixed: int) -> Run:
    prefix = f"bbl{uuid.uuid4().hex[:8]}"
    broker = Broker(kind, url, f"{prefix}:b:" if kind == "redis" else "")
    held, mixed_q = held_queue(prefix), mixed_queue(prefix)
    client = redis.Redis.from_url(redis_url)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": url,
        "CELERY_BROKER_KEYPREFIX": broker.keyprefix,
        "CELERY_RESULT_BACKEND": redis_url,
        "CELERY_DEFAULT_QUEUE": f"{prefix}-default",
        "CELERY_PREFETCH_MULTIPLIER": "4",
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "MAINTENANCE_DATABASE_URL": db_url,
        "MAINTENANCE_HOLD_QUEUES": "auto",
        "MAINTENANCE_HEARTBEAT_INTERVAL": "0.2",
        "MAINTENANCE_NODE_TTL": "3",
        "MAINTENANCE_ENABLE_WAIT": "10",
        "MAINTENANCE_BEAT_INTERVAL": "3600",
        "BACKLOG_WORKER": "1",
        "BACKLOG_PREFIX": prefix,
        "BACKLOG_COUNTER_URL": redis_url,
        "PYTHONPATH": str(ROOT),
    }
    service = build_service(Settings.from_env(env), kind="web").start()
    app = Celery("backlog_bench_publisher", set_as_current=False)
    options = {"global_keyprefix": broker.keyprefix} if broker.keyprefix else {}
    app.conf.update(broker_url=url, broker_transport_options=options, task_ignore_result=True)
    register(app)
    signals.install(app, service)  # the disable requeues the deferred jobs through it
    host = f"backlog-{prefix}@{socket.gethostname()}"
    proc = start_worker(env, f"backlog-{prefix}", [held, mixed_q])
    result = Run(kind, jobs, mixed)
    try:
        wait(lambda: held_by(service, host) is not None, 120, "the worker", step=0.2)
        measure(service, app, client, broker, host, prefix, result)
    finally:
        stop_worker(proc)
        service.close()
        service.db.dispose()
        app.close()
        broker.drop([held, mixed_q, f"{prefix}-default"])
        delete_keys(client, f"{prefix}*")
    return result


def measure(  # type: ignore[no-untyped-def]
    service: EnhancedMaintenanceModeService, app, client, broker: Broker, host, prefix, r: Run
) -> None:
    held, mixed_q = held_queue(prefix), mixed_queue(prefix)
    release = f"{prefix}:release"
    ran = lambda queue: client.llen(ran_key(queue, prefix))  # noqa: E731
    publish(app, CAPTION, held, [0], wait=release)  # occupies the only pool process
    wait(lambda: client.exists(f"{prefix}:waiting:0"), 60, "the first job")
    start = time.perf_counter()
    publish(app, CAPTION, held, range(1, r.jobs))
    publish(app, CAPTION_MIXED, mixed_q, range(r.mixed))
    r.publish = time.perf_counter() - start
    wait(lambda: broker.length(held) >= r.jobs - 8, 120, "the backlog queued", step=0.05)
    print(
        f"  {r.broker}: published {r.jobs + r.mixed:,} task messages in {r.publish:.2f} s "
        f"({(r.jobs + r.mixed) / r.publish:,.0f}/s)",
        flush=True,
    )

    start = time.perf_counter()
    service.enable_maintenance("backlog bench", "30m", enabled_by="bench")
    held_at = wait(
        lambda: held_by(service, host) == [held] and broker.length(held) == r.jobs - 1,
        120,
        "the backlog held in the broker",
    )
    r.hold = held_at - start
    store = JobStore(service.db)
    client.set(release, 1)  # job 0 ends; the worker now defers the mixed queue's backlog
    timeout = 60 + r.mixed / 20
    deferred_at = wait_count(lambda: store.count(DEFERRED), r.mixed, timeout, "all deferred")
    r.defer = deferred_at - start
    held_rows = sum(1 for rec in store.find(DEFERRED, limit=None) if rec.queue == held)
    # Job 0 records its run as it ends, and a message a worker's fetch had in flight as
    # the hold began is given back to the queue: either may lag for a moment, never for
    # good (a held queue consumed shows as more runs, fewer waiting, or rows in SQL).
    with contextlib.suppress(SystemExit):  # judged below, saying what was found
        wait(lambda: (broker.length(held), ran(held)) == (r.jobs - 1, 1), 10, "", 0.05)
    waiting, started = broker.length(held), ran(held)
    if held_rows or waiting != r.jobs - 1 or started != 1:
        raise SystemExit(
            f"{r.broker}: the held queue was consumed during the window: {held_rows} of its "
            f"jobs deferred to SQL, {waiting:,} waiting in the broker (expected "
            f"{r.jobs - 1:,}), {started} ran (expected 1)"
        )
    print(
        f"  {r.broker}: held {r.jobs - 1:,} jobs in the broker in {r.hold:.3f} s; deferred "
        f"{r.mixed:,} to SQL in {r.defer:.2f} s ({r.mixed / r.defer:,.0f}/s)",
        flush=True,
    )

    def disable() -> None:  # requeues the deferred ones, in this process
        service.disable_maintenance("bench")
        r.requeue = time.perf_counter() - start

    lifter = threading.Thread(target=disable, name="bench-disable")
    start = time.perf_counter()
    lifter.start()
    resumed_at = wait(
        lambda: held_by(service, host) == [] and ran(held) >= 2, 60, "consumption resumed"
    )
    r.resume = resumed_at - start
    lifter.join(120 + r.mixed)
    timeout = 120 + (r.jobs + r.mixed) / 50
    done_at = wait(lambda: ran(held) >= r.jobs and ran(mixed_q) >= r.mixed, timeout, "all ran", 0.1)
    r.drain = done_at - start
    wait(lambda: broker.length(held) == 0, 30, "the held queue empty")
    for queue, expected in ((held, r.jobs), (mixed_q, r.mixed)):
        ran_list = [int(x) for x in client.lrange(ran_key(queue, prefix), 0, -1)]
        for key, count in check(ran_list, expected).items():
            r.problems[key] += count
    print(
        f"  {r.broker}: resumed in {r.resume:.3f} s; requeued {r.mixed:,} from SQL in "
        f"{r.requeue:.2f} s ({r.mixed / r.requeue:,.0f}/s); all {r.jobs + r.mixed:,} ran "
        f"{r.drain:.1f} s after the disable ({(r.jobs + r.mixed) / r.drain:,.0f}/s); "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in r.problems.items()),
        flush=True,
    )


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--jobs", type=int, default=100_000, help="held-queue backlog")
    options.add_argument("--mixed", type=int, default=100_000, help="mixed-queue backlog")
    options.add_argument("--brokers", default="redis,rabbitmq")
    args = options.parse_args()
    if args.short:
        args.jobs, args.mixed = 2_000, 200
    report = Report("backlog", args)
    redis_url = bench_redis_url()
    runs = [
        run_broker(kind, url, redis_url, db_url, args.jobs, args.mixed)
        for kind, url, db_url in each_broker(args.brokers, redis_url)
    ]
    if not runs:
        raise SystemExit("backlog: no broker to run on")
    worst_hold = max(runs, key=lambda r: r.hold)
    worst_resume = max(runs, key=lambda r: r.resume)
    report.goal("backlog.hold", worst_hold.hold, None, f"{worst_hold.broker}, worst broker")
    report.goal("backlog.resume", worst_resume.resume, None, f"{worst_resume.broker}")
    worst_defer = max(runs, key=lambda r: r.defer)
    worst_requeue = max(runs, key=lambda r: r.requeue)
    jobs = f"{worst_defer.mixed:,} jobs"
    report.goal("backlog.defer", worst_defer.defer, None, f"{worst_defer.broker}, {jobs}")
    report.goal("backlog.requeue", worst_requeue.requeue, None, f"{worst_requeue.broker}, {jobs}")
    for key in COUNTS:
        report.goal(f"backlog.{key}", sum(r.problems[key] for r in runs), None)
    report.finish()


if __name__ == "__main__":
    main()
