"""pytest plugin for Celery's own integration suite: the maintenance hooks on its apps.

Loaded with ``-p celery_suite_plugin`` in the hooked runs of ``./dev celery-suite``.
The suite builds its apps through ``celery.contrib.pytest`` fixtures: a fresh
``celery_app`` per test (what the tests publish with) and ``celery_session_app``
(what the session worker runs). Each is handed to ``signals.install`` the moment
its fixture returns it -- before the session worker starts -- which is all an
application does to adopt the hooks. The suite's own files stay untouched; the
control plane comes from the environment (``REDIS_URL``, ``MAINTENANCE_*``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

import signals

_APP_FIXTURES = frozenset({"celery_app", "celery_session_app"})


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Generator[None, Any, Any]:
    value = yield
    if fixturedef.argname in _APP_FIXTURES:
        signals.install(value)
    return value
