"""Publish gate overhead: gated vs ungated ``apply_async`` to the same Redis broker, one run.

Two apps with identical configuration and the same task publish to one
queue on the same broker; one has ``signals.install``. Publishes are
interleaved one by one in ABBA order and each is timed, so drift, GC and
the shared Redis's hiccups hit both alike; the ratio of the medians is
compared with the goal (<= 1.03). An A/A line (two ungated apps measured
the same way) shows the noise floor of the method on this machine.
The ungated publishes run with the stamping receiver disconnected: a
process without the hooks has no ``before_task_publish`` receiver at all.

Measured with maintenance off (every publish until maintenance starts) and
with maintenance on for a type it does not block.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
from _common import bench_settings
from celery import Celery
from celery.signals import before_task_publish

import signals
from maintenance import build_service
from maintenance.redisconn import resolve_redis_url
from signals.stamping import stamp_headers

GOAL = 1.03
PAIRS = int(os.environ.get("BENCH_PAIRS", "6000"))


def make_app(name: str, broker: str, keyprefix: str, queue: str) -> Celery:
    app = Celery(name, set_as_current=False)
    app.conf.update(
        broker_url=broker,
        broker_transport_options={"global_keyprefix": keyprefix},
        task_default_queue=queue,
        task_ignore_result=True,
        task_acks_late=True,
    )

    @app.task(shared=False, name="captions.generate_caption")
    def generate_caption(label: str) -> str:
        return label

    return app


def _stamping(on: bool) -> None:
    if on:
        before_task_publish.connect(stamp_headers, weak=False, dispatch_uid="maintenance-stamp")
    else:
        before_task_publish.disconnect(stamp_headers, dispatch_uid="maintenance-stamp")


def one(app: Celery, stamped: bool) -> float:
    """Seconds for one ``apply_async``."""
    _stamping(stamped)
    task = app.tasks["captions.generate_caption"]
    start = time.perf_counter()
    task.apply_async(("x",))
    return time.perf_counter() - start


def compare(a: Celery, a_stamped: bool, b: Celery, b_stamped: bool) -> tuple[float, float]:
    """Median seconds per publish of ``a`` and of ``b``, interleaved ABBA."""
    times_a, times_b = [], []
    for i in range(PAIRS):
        if i % 2:
            times_a.append(one(a, a_stamped))
            times_b.append(one(b, b_stamped))
        else:
            times_b.append(one(b, b_stamped))
            times_a.append(one(a, a_stamped))
    return statistics.median(times_a), statistics.median(times_b)


def line(label: str, plain: float, gated: float, goal: float | None = None) -> str:
    ratio = gated / plain
    verdict = ""
    if goal is not None:
        verdict = f"  (goal <= {goal})  {'OK' if ratio <= goal else 'MISSED'}"
    return (
        f"  {label:<34} ungated {plain * 1e6:7.1f} us   gated {gated * 1e6:7.1f} us"
        f"   ratio {ratio:.3f}{verdict}"
    )


def main() -> None:
    settings = bench_settings()
    broker = resolve_redis_url(settings)
    keyprefix = f"{settings.redis_prefix}:broker:"
    queue = "bench-publish"
    service = build_service(settings, kind="bench", register=False).start()
    gated_app = make_app("gated", broker, keyprefix, queue)
    plain_app = make_app("plain", broker, keyprefix, queue)
    signals.install(gated_app, service)
    client = redis.Redis.from_url(broker)
    control_app = make_app("control", broker, keyprefix, queue)
    try:
        for app in (plain_app, control_app, gated_app):  # connections, routes, classes warm
            for _ in range(300):
                one(app, app is gated_app)
        print(f"publish gate: {PAIRS} interleaved pairs of apply_async on {broker}")
        plain, control = compare(plain_app, False, control_app, False)
        print(line("A/A control (both ungated)", plain, control))
        plain, gated = compare(plain_app, False, gated_app, True)
        print(line("maintenance off", plain, gated, GOAL))
        service.enable_maintenance(
            "bench", "10m", enabled_by="bench", blocked_operations=["batch_operations"]
        )
        plain, gated = compare(plain_app, False, gated_app, True)
        print(line("maintenance on, type not blocked", plain, gated))
        service.disable_maintenance("bench", requeue=False)
    finally:
        service.close()
        names = list(client.scan_iter(f"{settings.redis_prefix}*", count=1000))
        for start in range(0, len(names), 500):
            client.delete(*names[start : start + 500])


if __name__ == "__main__":
    main()
