"""The app of the capacity test, served in a process of its own: the middleware, the JSON
API, the admin panel, a session-role login, one allowed route (``GET /feed``) and one
blocked while maintenance is on (``POST /captions/generate``), configured from the
environment (REDIS_URL, MAINTENANCE_DATABASE_URL, MAINTENANCE_REDIS_PREFIX, ...).

    python -m tests.web.capacity_server THREADS [PORT]
serves it on waitress with a small thread pool and prints ``{"port": N}`` once it
listens; gunicorn and uWSGI load ``tests.web.capacity_wsgi:application`` instead.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from typing import Any

from flask import Flask
from waitress import create_server

from maintenance import EnhancedMaintenanceModeService, Settings, build_service
from tests.admin_ui.app import build_app

#: Short enough that the test sees several poll cycles and stream ends in seconds.
CONFIG: dict[str, Any] = {
    "MAINTENANCE_POLL_MIN_SECONDS": 1.0,
    "MAINTENANCE_POLL_MAX_SECONDS": 4.0,
    "MAINTENANCE_SSE_HEARTBEAT": 1.0,
    "MAINTENANCE_SSE_MAX_SECONDS": 5.0,
}


#: Stream caps a server's settings may give (docs/deployment.md); unset: the defaults.
CAPS = ("MAINTENANCE_SSE_MAX_STREAMS", "MAINTENANCE_SSE_MAX_ADMIN_STREAMS")


def create_app() -> tuple[Flask, EnhancedMaintenanceModeService]:
    """The app and its web node's service (started), from the environment."""
    service = build_service(Settings.from_env(), kind="web").start()
    caps = {name: int(os.environ[name]) for name in CAPS if name in os.environ}
    app = build_app(service, **CONFIG, **caps)

    @app.get("/feed")
    def feed() -> str:
        return "items"

    return app, service


def main() -> None:
    threads = int(sys.argv[1])
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app, service = create_app()

    # waitress stops accepting beyond connection_limit (100 by default): every browser
    # with a keep-alive connection counts, so it is sized for the viewers expected.
    server: Any = create_server(
        app, host="127.0.0.1", port=port, threads=threads, connection_limit=2000, backlog=2048
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(json.dumps({"port": server.effective_port}), flush=True)
    try:
        server.run()
    finally:
        service.close()


if __name__ == "__main__":
    main()
