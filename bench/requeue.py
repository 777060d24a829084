"""The recovery requeue of a large SQL backlog alone: 100,000 deferred jobs recorded in
PostgreSQL, republished by ``workers.requeue.requeue_jobs``, on Redis and on RabbitMQ.

``bench/backlog.py`` measures the same requeue end to end, but its worker defers the
mixed queue one SQL transaction per message (about 100 jobs/s on this machine), so a
100,000-job backlog would take most of an hour per broker to build. Here the records are
written straight into SQL, as a worker records a held-back message
(``workers.records.record_from_message``: same task, arguments, options, delivery info
and publish times), the queue is bound the way a worker consuming it binds it, and then:

* ``requeue_jobs`` (the code ``maintenance recover``, the API and the panel run) is
  timed, with the app's Redis result backend (``--no-result-backend``: without one);
* the broker's queue is read back: every job must be there once, in its original order
  (lost, duplicated and out-of-order counts, each goal 0), carrying the requeue headers.

``--profile`` runs the requeue under cProfile and prints the 30 costliest functions
(cumulative). Options: ``--jobs`` (100,000), ``--brokers`` (``redis,rabbitmq``),
``--short`` (2,000). Environment as ``bench/backlog.py``: ``REDIS_URL``,
``MAINTENANCE_DATABASE_URL`` (else a fresh schema in ``BENCH_POSTGRES_URL``),
``BENCH_RABBITMQ_URL``.
"""

from __future__ import annotations

import cProfile
import itertools
import json
import os
import pstats
import socket
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from celery import Celery
from kombu import Connection, Consumer, Queue

import signals
from bench._common import Report, bench_redis_url, delete_keys, parser
from bench.backlog import Broker, each_broker
from bench.support.backlog_app import CAPTION_MIXED, mixed_queue, register
from maintenance import EnhancedMaintenanceModeService, Settings, build_service
from maintenance.store import schema
from maintenance.store.jobs import REQUEUED, JobStore
from workers import routing
from workers.headers import REQUEUE_ATTEMPT, REQUEUED_FROM
from workers.records import record_from_message
from workers.requeue import requeue_jobs

COUNTS = ("lost", "duplicated", "out_of_order")
#: Records written per INSERT while seeding.
SEED_CHUNK = 5_000


def seed(service: EnhancedMaintenanceModeService, app: Celery, queue: str, n: int) -> list[str]:
    """``n`` deferred records of ``queue``'s task, as a worker writes them; their ids in
    publish order."""
    broker = routing.broker_of(app)
    host = f"bench@{socket.gethostname()}"
    start = time.time() - n * 1e-3
    ids: list[str] = []
    rows: list[dict[str, Any]] = []
    for seq in range(n):
        task_id = str(uuid.uuid4())
        ids.append(task_id)
        record = record_from_message(
            task_name=CAPTION_MIXED,
            task_id=task_id,
            headers={
                "maintenance_published_at": start + seq * 1e-3,
                "origin": host,
                "argsrepr": f"({seq},)",  # as Celery writes them (``saferepr``)
                "kwargsrepr": "{}",
            },
            payload=[[seq], {}, {"callbacks": None, "errbacks": None, "chain": None}],
            delivery_info={"exchange": queue, "routing_key": queue, "priority": 0},
            properties={"priority": 0},
            operation="caption_generation",
            reason="maintenance active",
            worker=host,
            activation_id=None,
            broker=broker,
        )
        rows.append(_row(record))
    with service.db.begin() as conn:
        for at in range(0, len(rows), SEED_CHUNK):
            conn.execute(schema.jobs.insert(), rows[at : at + SEED_CHUNK])
    return ids


def _row(record: Any) -> dict[str, Any]:
    """The ``maintenance_jobs`` row ``JobStore.record`` writes for ``record``."""
    stamp = datetime.now(UTC)
    return {
        "original_id": record.original_id,
        "task_name": record.task_name,
        "operation": record.operation,
        "args_json": json.dumps(record.args),
        "kwargs_json": json.dumps(record.kwargs),
        "options_json": json.dumps(record.options, sort_keys=True),
        "queue": record.queue,
        "state": record.state,
        "kind": record.kind,
        "reason": record.reason,
        "outcome": None,
        "worker": record.worker,
        "rerun_safe": True,
        "requeued_id": None,
        "activation_id": None,
        "created_at": stamp,
        "updated_at": stamp,
    }


def bind(app: Celery, queue: str) -> None:
    """Declare ``queue`` and its binding as a worker consuming it does."""
    with app.connection_for_write() as conn:
        app.amqp.queues[queue](conn.default_channel).declare()


def read_back(broker: Broker, queue: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    """``(task id, headers)`` of every message in ``queue``, in consumption order."""
    if broker.kind == "redis":
        client = redis.Redis.from_url(broker.url)
        raw = client.lrange(f"{broker.keyprefix}{queue}", 0, -1)
        found = []
        for item in reversed(raw):  # LPUSH in, BRPOP out: the oldest is last
            message = json.loads(item)
            found.append((message["headers"]["id"], message["headers"]))
        return found
    found = []

    def on_message(message: Any) -> None:
        found.append((message.headers["id"], message.headers))

    with Connection(broker.url) as conn:
        channel = conn.channel()
        channel.basic_qos(0, 1000, False)
        consumer = Consumer(
            channel, queues=[Queue(queue, no_declare=True)], on_message=on_message, no_ack=True
        )
        with consumer:
            deadline = time.monotonic() + 60 + n / 1000
            while len(found) < n and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=2)
                except TimeoutError:
                    break
    return found


def check(found: list[tuple[str, dict[str, Any]]], ids: list[str]) -> dict[str, int]:
    """Lost, duplicated and out-of-order jobs (by original publish order), and requeue
    headers missing."""
    position = {task_id: i for i, task_id in enumerate(ids)}
    seen: dict[str, int] = {}
    for task_id, headers in found:
        seen[task_id] = seen.get(task_id, 0) + 1
        if headers.get(REQUEUED_FROM) != task_id or not headers.get(REQUEUE_ATTEMPT):
            raise SystemExit(f"requeued {task_id} lacks its requeue headers: {headers}")
    order = [position.get(task_id, -1) for task_id, _ in found]
    return {
        "lost": sum(1 for task_id in ids if task_id not in seen),
        "duplicated": sum(n - 1 for n in seen.values() if n > 1),
        "out_of_order": sum(1 for a, b in itertools.pairwise(order) if b <= a),
    }


def run_broker(
    kind: str, url: str, redis_url: str, db_url: str, n: int, backend: bool, profile: bool
) -> tuple[float, dict[str, int]]:
    prefix = f"brq{uuid.uuid4().hex[:8]}"
    broker = Broker(kind, url, f"{prefix}:b:" if kind == "redis" else "")
    queue = mixed_queue(prefix)
    client = redis.Redis.from_url(redis_url)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "MAINTENANCE_DATABASE_URL": db_url,
    }
    service = build_service(Settings.from_env(env), kind="web").start()
    os.environ["BACKLOG_PREFIX"] = prefix
    app = Celery("requeue_bench", set_as_current=False)
    options = {"global_keyprefix": broker.keyprefix} if broker.keyprefix else {}
    app.conf.update(broker_url=url, broker_transport_options=options)
    if backend:
        app.conf.update(result_backend=redis_url, result_backend_transport_options=options)
    register(app)
    app.conf.task_routes = {CAPTION_MIXED: {"queue": queue}}
    signals.install(app, service)
    try:
        bind(app, queue)
        start = time.perf_counter()
        ids = seed(service, app, queue, n)
        print(f"  {kind}: seeded {n:,} deferred records in {time.perf_counter() - start:.1f} s")
        marked_before = JobStore(service.db).count(REQUEUED)
        profiler = cProfile.Profile() if profile else None
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = requeue_jobs(app, service, use_lock=True)
        if profiler is not None:
            profiler.disable()
        took = time.perf_counter() - start
        if report.failed:
            raise SystemExit(f"{kind}: {len(report.failed)} failed, first {report.failed[0]}")
        marked = JobStore(service.db).count(REQUEUED) - marked_before
        found = read_back(broker, queue, n)
        problems = check(found, ids)
        print(
            f"  {kind}: requeued {len(report.requeued):,} from SQL in {took:.2f} s "
            f"({n / took:,.0f}/s); marked requeued {marked:,}; in the queue {len(found):,}; "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in problems.items()),
            flush=True,
        )
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return took, problems
    finally:
        service.close()
        service.db.dispose()
        app.close()
        broker.drop([queue])
        delete_keys(client, f"{prefix}*")


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--jobs", type=int, default=100_000, help="SQL backlog")
    options.add_argument("--brokers", default="redis,rabbitmq")
    options.add_argument("--profile", action="store_true", help="cProfile the requeue")
    options.add_argument(
        "--no-result-backend", action="store_true", help="the app has no result backend"
    )
    args = options.parse_args()
    if args.short:
        args.jobs = 2_000
    report = Report("requeue", args)
    redis_url = bench_redis_url()
    runs: dict[str, tuple[float, dict[str, int]]] = {}
    for kind, url, db_url in each_broker(args.brokers, redis_url):
        runs[kind] = run_broker(
            kind, url, redis_url, db_url, args.jobs, not args.no_result_backend, args.profile
        )
    if not runs:
        raise SystemExit("requeue: no broker to run on")
    worst = max(runs, key=lambda k: runs[k][0])
    report.goal("requeue.time", runs[worst][0] * 100_000 / args.jobs, None, f"{worst}, worst")
    for key in COUNTS:
        report.goal(f"requeue.{key}", sum(p[key] for _, p in runs.values()), None)
    report.finish()


if __name__ == "__main__":
    main()
