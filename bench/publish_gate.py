"""Publish gate overhead: gated vs ungated ``apply_async`` to the same Redis broker, one run.

Two apps with identical configuration publish the same task to the same
queue on the same broker; one has ``signals.install`` (its gate wraps that app's
``send_task`` only and connects no signal receiver), so the ungated app pays exactly
what a deployment without the control plane pays. They publish
in alternating blocks (ABBA order), each publish timed, so drift, GC and the
shared Redis's hiccups hit both alike; the ratio of the medians is compared
with the goal (bench/goals.py: <= 1.02). An A/A line (two ungated apps
measured the same way) shows the noise of the method in this run, the margin
the goal is judged with.

Measured with maintenance off (every publish until maintenance starts) and
with maintenance on for a type it does not block.

Where valgrind is installed, the maintenance-off comparison is also run under callgrind
in a child process (each block a phase of its own, one message
published before the phase starts) and the instructions of the publishing thread are
counted: gated / plain in instructions does not move with what else the machine runs, so
that is the ratio judged, with control / plain counted the same way as its A/A; the
time ratio is printed beside it. Without valgrind (or with ``BENCH_INSTRUCTIONS=0``) the
time ratio is judged.

    .venv/bin/python bench/publish_gate.py [--pairs 6000] [--short] [--check]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from celery import Celery

from bench._common import (
    INSTRUCTIONS_CHILD,
    Report,
    aa_noise,
    bench_settings,
    delete_keys,
    freeze_heap,
    instruction_ratios,
    parser,
    phase,
)
from bench.goals import BY_KEY

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


def compare(apps: dict[str, tuple[Celery, bool]], pairs: int) -> dict[str, float]:
    """Median seconds per publish of each app, in blocks whose order reverses every round
    (ABC CBA ...), so drift and the shared Redis's hiccups hit every app alike.
    """
    times: dict[str, list[float]] = {name: [] for name in apps}
    order = list(apps.items())
    for _ in range(pairs // BLOCK):
        for name, (app, _hooked) in order:
            times[name].extend(publish(app, BLOCK))
        order.reverse()
    return {name: statistics.median(values) for name, values in times.items()}


def line(label: str, plain: float, gated: float) -> str:
    return (
        f"  {label:<34} ungated {plain * 1e6:7.1f} us   gated {gated * 1e6:7.1f} us"
        f"   ratio {gated / plain:.3f}"
    )


def instructions_child(blocks: int, block: int) -> None:
    """Under callgrind (``count_instructions``): each app's blocks of publishes, one phase
    each, the order reversing every round; maintenance off."""
    import signals
    from maintenance import build_service
    from maintenance.redisconn import resolve_redis_url

    settings = bench_settings()
    broker = resolve_redis_url(settings)
    keyprefix = f"{settings.redis_prefix}:broker:"
    service = build_service(settings, kind="bench", register=False).start()
    apps = {
        name: make_app(name, broker, keyprefix, "bench-publish")
        for name in ("plain", "control", "gated")
    }
    signals.install(apps["gated"], service)
    try:
        for app in apps.values():
            publish(app, 300)
        freeze_heap()
        order = list(apps.items())
        for _ in range(blocks):
            for name, app in order:
                publish(app, 1)  # caches warm outside the phase
                phase(name)
                publish(app, block)
            order.reverse()
        phase("end")
    finally:
        service.close()
        service.db.dispose()
        delete_keys(redis.Redis.from_url(broker), f"{settings.redis_prefix}*")


def gate_instructions(blocks: int, block: int) -> tuple[float, float] | None:
    """gated / plain and control / plain in instructions per publish (None: no valgrind)."""
    return instruction_ratios(
        __file__,
        ["--blocks", str(blocks), "--block", str(block)],
        blocks * block,
        unit="publish",
        subject="gated",
        baseline="plain",
        control="control",
        shape=f"{blocks} blocks x {block}",
    )


def main() -> None:
    if INSTRUCTIONS_CHILD in sys.argv:
        sys.argv.remove(INSTRUCTIONS_CHILD)
        child = parser(__doc__)
        child.add_argument("--blocks", type=int, default=4)
        child.add_argument("--block", type=int, default=200)
        known = child.parse_args()
        instructions_child(known.blocks, known.block)
        return
    options = parser(__doc__)
    options.add_argument("--pairs", type=int, default=6000, help="publishes per app")
    options.add_argument("--instr-blocks", type=int, default=4, help="blocks under callgrind")
    options.add_argument("--instr-block", type=int, default=200, help="publishes per block there")
    args = options.parse_args()
    pairs = 500 if args.short else args.pairs
    report = Report("publish_gate", args)
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
    apps = {
        "plain": (plain_app, False),
        "control": (control_app, False),
        "gated": (gated_app, True),
    }
    try:
        for app in (plain_app, control_app, gated_app):  # connections, routes, classes warm
            publish(app, 300)
        print(
            f"publish gate: {pairs} publishes per app, blocks of {BLOCK} in alternating order, "
            f"on {broker}"
        )
        off = compare(apps, pairs)
        print(line("A/A control (both ungated)", off["plain"], off["control"]))
        print(line("maintenance off", off["plain"], off["gated"]))
        service.enable_maintenance(
            "bench", "10m", enabled_by="bench", blocked_operations=["batch_operations"]
        )
        on = compare(apps, pairs)
        print(line("A/A control, maintenance on", on["plain"], on["control"]))
        print(line("maintenance on, type not blocked", on["plain"], on["gated"]))
        service.disable_maintenance("bench", requeue=False)
        control = off["control"] / off["plain"]
        limit = BY_KEY["publish_gate.ratio"].limit
        timed = off["gated"] / off["plain"]
        counted = None
        if args.short:
            print("  instructions: not counted (short run)")
        else:
            counted = gate_instructions(args.instr_blocks, args.instr_block)
        if counted is not None:
            report.goal(
                "publish_gate.ratio",
                counted[0],
                aa_noise(counted[1], limit),
                note=f"instructions; time {timed:.3f} x, its A/A {control:.3f}",
            )
        else:
            report.goal("publish_gate.ratio", timed, aa_noise(control, limit), note="time")
    finally:
        service.close()
        service.db.dispose()
        delete_keys(client, f"{settings.redis_prefix}*")
    report.finish()


if __name__ == "__main__":
    main()
