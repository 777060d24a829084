"""Publish gate overhead: gated vs ungated ``apply_async`` to the same Redis broker, one run.

Two apps with identical configuration publish the same task to the same
queue on the same broker; one has ``signals.install``. While the ungated app
publishes, the hooks' ``before_task_publish`` receiver is disconnected, so it
pays exactly what a deployment without the control plane pays. They publish
in alternating blocks (ABBA order), each publish timed, so drift, GC and the
shared Redis's hiccups hit both alike; the ratio of the medians is compared
with the goal (<= 1.03). An A/A line (two ungated apps measured the same
way) shows the noise floor of the method.

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

import redis
from celery import Celery

from bench._common import bench_settings, delete_keys, verdict

GOAL = 1.03
PAIRS = int(os.environ.get("BENCH_PAIRS", "6000"))
BLOCK = 50


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


def publish(app: Celery, n: int) -> list[float]:
    """Seconds for each of ``n`` ``apply_async`` calls."""
    task = app.tasks["captions.generate_caption"]
    out = []
    for _ in range(n):
        start = time.perf_counter()
        task.apply_async(("x",))
        out.append(time.perf_counter() - start)
    return out


def _receivers(on: bool) -> None:
    """Connect or disconnect the hooks' ``before_task_publish`` receiver."""
    from celery.signals import before_task_publish

    from signals.stamping import stamp_headers

    if on:
        before_task_publish.connect(stamp_headers, weak=False, dispatch_uid="maintenance-stamp")
    else:
        before_task_publish.disconnect(stamp_headers, dispatch_uid="maintenance-stamp")


def compare(plain: Celery, other: Celery, other_hooked: bool, pairs: int) -> tuple[float, float]:
    """Median seconds per publish of ``plain`` and ``other``, in ABBA blocks.

    The receiver is connected only while ``other`` publishes (when it is the
    hooked app), and switched at block boundaries: switching clears Celery's
    receiver cache, which only the first publish of a block pays.
    """
    times_plain: list[float] = []
    times_other: list[float] = []

    def run_plain() -> None:
        _receivers(False)
        times_plain.extend(publish(plain, BLOCK))

    def run_other() -> None:
        _receivers(other_hooked)
        times_other.extend(publish(other, BLOCK))

    for i in range(pairs // BLOCK):
        first, second = (run_plain, run_other) if i % 2 else (run_other, run_plain)
        first()
        second()
    return statistics.median(times_plain), statistics.median(times_other)


def line(label: str, plain: float, gated: float, goal: float | None = None) -> str:
    ratio = gated / plain
    judged = ""
    if goal is not None:
        judged = f"  (goal <= {goal})  {verdict(ratio <= goal)}"
    return (
        f"  {label:<34} ungated {plain * 1e6:7.1f} us   gated {gated * 1e6:7.1f} us"
        f"   ratio {ratio:.3f}{judged}"
    )


def main() -> None:
    settings = bench_settings()
    from maintenance.redisconn import resolve_redis_url

    broker = resolve_redis_url(settings)
    keyprefix = f"{settings.redis_prefix}:broker:"
    queue = "bench-publish"
    client = redis.Redis.from_url(broker)
    import signals
    from maintenance import build_service

    service = build_service(settings, kind="bench", register=False).start()
    plain_app = make_app("plain", broker, keyprefix, queue)
    control_app = make_app("control", broker, keyprefix, queue)
    gated_app = make_app("gated", broker, keyprefix, queue)
    signals.install(gated_app, service)
    try:
        for app in (plain_app, control_app, gated_app):  # connections, routes, classes warm
            publish(app, 300)
        print(f"publish gate: {PAIRS} publishes per app in ABBA blocks of {BLOCK} on {broker}")
        plain, control = compare(plain_app, control_app, False, PAIRS)
        print(line("A/A control (both ungated)", plain, control))
        plain, gated = compare(plain_app, gated_app, True, PAIRS)
        print(line("maintenance off", plain, gated, GOAL))
        service.enable_maintenance(
            "bench", "10m", enabled_by="bench", blocked_operations=["batch_operations"]
        )
        plain, gated = compare(plain_app, gated_app, True, PAIRS)
        print(line("maintenance on, type not blocked", plain, gated))
        service.disable_maintenance("bench", requeue=False)
    finally:
        service.close()
        service.db.dispose()
        delete_keys(client, f"{settings.redis_prefix}*")


if __name__ == "__main__":
    main()
