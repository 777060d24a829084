"""One web instance of the activation-under-load bench: a small Flask app wired with
``MaintenanceModeMiddleware``, with its own service (status cache, node registration),
served by waitress in this process.

Every request is recorded around the whole WSGI call: what it was, when it started and
ended on this instance (``time.monotonic_ns()``: CLOCK_MONOTONIC, the same clock in every
process of the host) and the status it got. ``/_bench/records`` hands them over;
``/_bench/view`` is this instance's view of the status version and of an activation's
blocked-attempt count.

    python bench/support/load_web.py PORT THREADS WORK_SECONDS
(configured from the environment: REDIS_URL, MAINTENANCE_DATABASE_URL, ...)
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from flask import Flask, jsonify, request
from waitress import create_server

from maintenance import Settings, build_service
from maintenance.attempts import blocked_counters
from maintenance.web import MaintenanceModeMiddleware

#: (path, started ns, ended ns, status code)
Record = tuple[str, int, int, int]


def create_app(work: float) -> tuple[Any, Any]:
    """The app wrapped in the recorder, and its service."""
    service = build_service(Settings.from_env(), kind="web").start()
    app = Flask("load_bench")
    app.config.update(SECRET_KEY="bench", MAINTENANCE_EXEMPT_PATHS=("/_bench/*",))
    MaintenanceModeMiddleware(app, service)

    @app.get("/feed")
    def feed() -> str:
        return "items"

    @app.post("/captions/generate")
    def generate_caption() -> str:
        time.sleep(work)  # the work the request does once admitted (I/O-bound)
        return "queued"

    records: list[Record] = []
    lock = threading.Lock()

    @app.get("/_bench/records")
    def dump() -> Any:
        with lock:
            return jsonify(records)

    @app.get("/_bench/view")
    def view() -> Any:
        activation = request.args.get("activation", "")
        service.attempts.flush_counts()
        blocked = (
            blocked_counters(service.redis, service.keys, activation, service.operations.names())
            if activation
            else {}
        )
        return jsonify(
            node_id=service.cache.node_id,
            version=service.status.version,
            is_active=service.status.is_active,
            blocked=sum(blocked.values()),
        )

    inner = app.wsgi_app

    def recorded(environ: dict[str, Any], start_response: Any) -> Any:
        started = time.monotonic_ns()
        seen: list[int] = []

        def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen.append(int(status[:3]))
            return start_response(status, headers, exc_info)

        try:
            iterable = inner(environ, capture)
            try:
                body = list(iterable)
            finally:
                if hasattr(iterable, "close"):
                    iterable.close()
        except Exception:
            seen.append(599)
            raise
        finally:
            path = environ.get("PATH_INFO", "")
            if not path.startswith("/_bench/"):
                with lock:
                    records.append((path, started, time.monotonic_ns(), seen[-1] if seen else 0))
        return body

    app.wsgi_app = recorded  # type: ignore[method-assign]
    return app, service


def main() -> None:
    port, threads, work = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    # "Task queue depth is N" whenever every thread is busy: the bench shows latency instead.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app, service = create_app(work)
    server = create_server(app, host="127.0.0.1", port=port, threads=threads, backlog=1024)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(json.dumps({"node_id": service.cache.node_id}), flush=True)
    try:
        server.run()
    finally:
        service.close()


if __name__ == "__main__":
    main()
