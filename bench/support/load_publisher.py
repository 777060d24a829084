"""One Celery publisher process of the activation-under-load bench: its own service (status
cache, node registration), a Celery app on the Redis broker with the hooks installed by
``signals.install``, publishing a steady mix of a blocked type (caption generation) and an
allowed one (a read) at a fixed rate until its stdin closes.

Each publish is recorded: its type, when the call started and returned
(``time.monotonic_ns()``: CLOCK_MONOTONIC, the same clock in every process of the host) and
whether it was sent or refused. The records are written as JSON to OUT_FILE at the end.

    python bench/support/load_publisher.py RATE OUT_FILE
(configured from the environment: REDIS_URL, CELERY_BROKER_KEYPREFIX, MAINTENANCE_*)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from celery import Celery

import signals
from maintenance import OperationBlocked, Settings, build_service

#: (kind, started ns, returned ns, outcome: "sent" | "refused" | "error: ...")
Record = tuple[str, int, int, str]


def make_app() -> Celery:
    app = Celery("load_bench_publisher", set_as_current=False)
    app.conf.update(
        broker_url=os.environ["REDIS_URL"],
        broker_transport_options={"global_keyprefix": os.environ["CELERY_BROKER_KEYPREFIX"]},
        task_default_queue="load-bench",
        task_ignore_result=True,
        task_acks_late=True,
    )

    @app.task(shared=False, name="bench.generate_caption", operation_type="caption_generation")
    def generate_caption(n: int) -> int:
        return n

    @app.task(shared=False, name="bench.read_feed", operation_type="read_operations")
    def read_feed(n: int) -> int:
        return n

    return app


def main() -> None:
    rate, out_file = float(sys.argv[1]), Path(sys.argv[2])
    service = build_service(Settings.from_env(), kind="publisher").start()
    app = make_app()
    signals.install(app, service)
    tasks = {
        "blocked": app.tasks["bench.generate_caption"],
        "allowed": app.tasks["bench.read_feed"],
    }
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    for task in tasks.values():  # connection and routes warm
        task.apply_async((0,))
    print(json.dumps({"node_id": service.cache.node_id}), flush=True)

    records: list[Record] = []
    interval = 1.0 / rate
    next_at = time.monotonic()
    n = 0
    while not stop.is_set():
        kind = "blocked" if n % 2 else "allowed"
        started = time.monotonic_ns()
        try:
            tasks[kind].apply_async((n,))
            outcome = "sent"
        except OperationBlocked:
            outcome = "refused"
        except Exception as exc:  # counted and shown, never fatal to the load
            outcome = f"error: {type(exc).__name__}: {exc}"
        records.append((kind, started, time.monotonic_ns(), outcome))
        n += 1
        next_at += interval
        stop.wait(max(0.0, next_at - time.monotonic()))
    out_file.write_text(json.dumps(records))
    service.close()


if __name__ == "__main__":
    main()
