"""Emergency termination at scale: 200 running jobs over 2 prefork workers, one run.

Half the jobs poll ``should_abort()`` and stop in the grace period; the other half
ignore it and are SIGTERMed when it ends. Measured side by side with the goals:

* activation -> every job stopped (recorded in SQL for a rerun, no process still
  running one), minus the grace period: goal <= 2 s;
* lift -> all 200 republished under new ids: goal <= 2 s;
* lost and duplicated runs, counted from the jobs' own side effects (each job
  counts its completed runs in Redis): goal 0 and 0.

Goals in bench/goals.py. Each is measured once per run (no noise estimate): the times are
judged as measured, the counts exactly.

Options: ``--jobs`` (200), ``--concurrency`` (100 per worker), ``--grace`` (2 s), ``--short``
(8 jobs, 4 per worker, 0.5 s grace), ``--check``. Environment:
``REDIS_URL`` (else an embedded Redis),
``MAINTENANCE_DATABASE_URL`` (else SQLite; see ``database``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from celery import Celery

import signals
from bench._common import Report, bench_redis_url, delete_keys, parser, wait
from maintenance import Settings, build_service
from maintenance import events as maintenance_events
from maintenance.emergency import DeactivationRefused, fleet
from maintenance.emergency.phases import unfinished_workers_of
from maintenance.job_registry import JobRegistry
from maintenance.store.jobs import KIND_TERMINATED, REQUEUED, JobStore
from workers import EmergencyMaintenanceHandler

ROOT = Path(__file__).resolve().parents[1]
KILL_AFTER = 5.0


def database() -> str:
    """``MAINTENANCE_DATABASE_URL``, else a fresh SQLite file.

    Not PostgreSQL by default: every prefork pool child keeps a status cache whose
    periodic SQL re-check holds a connection, and 2 x 100 children exceed
    PostgreSQL's default ``max_connections`` (100).
    """
    explicit = os.environ.get("MAINTENANCE_DATABASE_URL")
    if explicit:
        return explicit
    return f"sqlite:///{tempfile.mkdtemp(prefix='maintenance-bench-')}/bench.db"


def _running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie has stopped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def start_workers(
    env: dict[str, str], queues: list[str], concurrency: int
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i, queue in enumerate(queues, 1):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "bench.support.emergency_app",
                    "worker",
                    "-P",
                    "prefork",
                    "-c",
                    str(concurrency),
                    "-n",
                    f"bench{i}@%h",
                    "-Q",
                    queue,
                    "--without-mingle",
                    "--without-gossip",
                    "-E",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--jobs", type=int, default=200)
    options.add_argument("--concurrency", type=int, default=100, help="pool size per worker")
    options.add_argument("--grace", type=float, default=2.0, help="seconds")
    args = options.parse_args()
    if args.short:
        args.jobs, args.concurrency, args.grace = 8, 4, 0.5
    report = Report("emergency", args)
    redis_url = bench_redis_url()
    prefix = f"bem{uuid.uuid4().hex[:8]}"
    queues = [f"{prefix}-q1", f"{prefix}-q2"]
    client = redis.Redis.from_url(redis_url)
    db_url = database()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_BROKER_KEYPREFIX": f"{prefix}:b:",
        "CELERY_DEFAULT_QUEUE": queues[0],
        "CELERY_PREFETCH_MULTIPLIER": "1",
        "CELERY_VISIBILITY_TIMEOUT": "3600",
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "MAINTENANCE_DATABASE_URL": db_url,
        "MAINTENANCE_NODE_TTL": "3",
        "MAINTENANCE_ENABLE_WAIT": "5",
        "MAINTENANCE_BEAT_INTERVAL": "3600",
        "BENCH_COUNTER_PREFIX": prefix,
        "PYTHONPATH": str(ROOT),
    }
    settings = Settings.from_env(env)
    service = build_service(settings, kind="web").start()
    app = Celery("emergency_bench_publisher", set_as_current=False)
    app.conf.update(
        broker_url=redis_url,
        result_backend=redis_url,
        broker_transport_options={"global_keyprefix": f"{prefix}:b:"},
        result_backend_transport_options={"global_keyprefix": f"{prefix}:b:"},
        task_acks_late=True,
    )
    signals.install(app, service)
    procs = start_workers(env, queues, args.concurrency)
    try:
        run(service, app, client, prefix, queues, args, report)
    finally:
        stop_workers(procs)
        service.close()
        service.db.dispose()
        delete_keys(client, f"{prefix}*")
    report.finish()


def run(service, app, client, prefix: str, queues: list[str], args, report) -> None:  # type: ignore[no-untyped-def]
    jobs, grace, concurrency = args.jobs, args.grace, args.concurrency
    host = socket.gethostname()
    started = time.perf_counter()
    wait(
        lambda: (
            {f"bench{i}@{host}" for i in (1, 2)}
            <= {n.info.get("hostname") for n in fleet.live_workers(service.nodes()).values()}
        ),
        240,
        "two workers",
        step=0.2,
    )
    labels = [f"job{i:04d}" for i in range(jobs)]
    for i, label in enumerate(labels):
        app.send_task("bench.hold", (label, i % 2 == 0), queue=queues[i % 2])
    registry = JobRegistry(service.redis, service.keys)
    pid_keys = [f"{prefix}:pid:{lb}" for lb in labels]
    wait(
        lambda: registry.count() >= jobs and all(client.mget(pid_keys)),
        240,
        f"{jobs} jobs running",
        step=0.05,
    )
    print(
        f"emergency: {jobs} running jobs over 2 prefork workers (-c {concurrency}); "
        f"ready after {time.perf_counter() - started:.1f}s; grace {grace:g}s, "
        f"SQL: {service.db.url.split(':')[0]}"
    )

    handler = EmergencyMaintenanceHandler(service, app)
    t0 = time.perf_counter()
    declared = handler.activate_emergency_mode("bench", "bench", grace, KILL_AFTER, watch=False)
    activated = time.perf_counter() - t0
    store = JobStore(service.db)
    aid = declared.activation.status.activation_id
    eid = declared.emergency_id

    pids = {lb: int(v) for lb, v in zip(labels, client.mget(pid_keys), strict=True)}

    def all_stopped() -> bool:
        """Every job recorded for a rerun: a cooperative one once it returned, a SIGTERMed
        one before the signal -- so those must also have lost their process."""
        recorded = store.find(kind=KIND_TERMINATED, activation_id=aid, limit=None)
        if len(recorded) < jobs:
            return False
        return not any(_running(pids[r.args[0]]) for r in recorded if r.outcome != "aborted")

    t_stopped = wait(all_stopped, grace + KILL_AFTER + 60, "every job stopped")
    stop = t_stopped - t0 - grace
    # The workers' own bookkeeping lags behind while each main process forks 100
    # replacement pool children; lifting asks the workers, so it waits for them.
    t_ladders = wait(
        lambda: not unfinished_workers_of(service, eid, declared.plan.plan_id),
        300,
        "the workers' ladders",
        step=0.1,
    )
    records = store.find(kind=KIND_TERMINATED, activation_id=aid, limit=None)
    outcomes = {o: sum(1 for r in records if r.outcome == o) for o in ("aborted", "terminated")}

    client.set(f"{prefix}:release", 1)
    disabled: list[float] = []

    def on_disabled(sender: object, **_: object) -> None:
        disabled.append(time.perf_counter())

    # The handler requeues right after the lift; without this, the receiver
    # ``signals.install`` connects would do it inside ``disable_maintenance``,
    # before ``on_disabled`` could start the clock.
    binding = signals.binding_of(app)
    maintenance_events.maintenance_disabled.disconnect(binding.on_disabled)
    maintenance_events.maintenance_disabled.connect(on_disabled, sender=service, weak=False)
    t1 = time.perf_counter()
    for attempt in range(5):
        try:
            lifted = handler.deactivate_emergency_mode("bench")
            break
        except DeactivationRefused as refused:
            # A worker still busy forking its replacement pool children may not answer
            # the lift's question in time; an operator would ask again.
            print(f"  lift refused (attempt {attempt + 1}): {refused}")
            t1 = time.perf_counter()
    else:
        raise SystemExit("the emergency could not be lifted")
    t_requeued = wait(
        lambda: len(store.find(REQUEUED, activation_id=aid, limit=None)) >= jobs,
        60,
        "all requeued",
    )
    lift = t_requeued - t1
    requeue = t_requeued - disabled[0]

    def runs() -> list[int]:
        values = client.mget([f"{prefix}:runs:{label}" for label in labels])
        return [int(v or 0) for v in values]

    wait(lambda: sum(runs()) >= jobs, 120, "requeued copies ran", step=0.1)
    time.sleep(1.0)  # let a duplicate, if any, show up before counting
    counted = runs()
    starts = [int(v or 0) for v in client.mget([f"{prefix}:starts:{lb}" for lb in labels])]
    lost = sum(1 for n in counted if n == 0)
    duplicated = sum(1 for n in counted if n > 1)

    print(f"  activation (fenced={declared.fenced})        : {activated * 1000:.1f} ms")
    print(f"  workers reported their ladders done    : {t_ladders - t0 - grace:.3f} s after grace")
    print(
        f"  stopped: {outcomes['aborted']} cooperatively, {outcomes['terminated']} by SIGTERM; "
        f"lift check ok={lifted.check.ok}, requeue={lifted.requeue}"
    )
    print(f"  activation -> all stopped, minus grace : {stop:.3f} s")
    print(f"  lifted -> all {jobs} requeued            : {requeue:.3f} s")
    print(f"  (with the lift's checks, from the call : {lift:.3f} s)")
    print(
        f"  lost runs {lost}, duplicated runs {duplicated} (each job started "
        f"{min(starts)}..{max(starts)} times)"
    )
    note = "" if jobs == 200 else f"{jobs} jobs"
    report.goal("emergency.stop", stop, None, note=note)
    report.goal("emergency.requeue", requeue, None, note=note)
    report.goal("emergency.lost", lost, 0)
    report.goal("emergency.duplicated", duplicated, 0)


if __name__ == "__main__":
    main()
