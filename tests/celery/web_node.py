"""A web server process with the maintenance middleware (rehearsal tests):
``python -m tests.celery.web_node <port>`` serves the web tests' app (one route per
operation family) with waitress, its service built from the environment."""

from __future__ import annotations

import sys

from waitress import serve

from maintenance import Settings, build_service
from tests.web.conftest import build_app

if __name__ == "__main__":
    service = build_service(Settings.from_env(), kind="web").start()
    serve(build_app(service), host="127.0.0.1", port=int(sys.argv[1]), threads=4)
