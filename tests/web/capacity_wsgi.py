"""The capacity test's app as a WSGI module for servers that import one (gunicorn, uWSGI):
each worker process that imports it builds its own app and web node."""

from __future__ import annotations

from tests.web.capacity_server import create_app

application, service = create_app()
