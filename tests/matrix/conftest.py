"""Fixtures: one real ``celery worker`` per (broker, pool) cell of the matrix.

Brokers: Redis and RabbitMQ (``pyamqp://``, the run's private vhost; results and the
control plane stay on Redis). Pools: prefork, threads, solo, gevent, eventlet. Each cell
is a fleet of its own (maintenance keys, SQLite file, broker keys or vhost queues) with
one worker running the emergency test tasks; the tests of ``test_cells.py`` share it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.brokers import BROKERS, TestBroker
from tests.celery.conftest import Fleet, WorkerProcess, close_fleet, fleet_environment, open_fleet
from tests.emergency.conftest import EmergencyFleet
from tests.support import delete_prefix

POOLS = ("prefork", "threads", "solo", "gevent", "eventlet")
#: Pools whose running job Celery can stop (``TaskPool.terminate_job``): prefork signals the
#: child process, gevent and eventlet kill the job's greenlet. Threads and solo cannot.
TERMINATES = frozenset({"prefork", "gevent", "eventlet"})
CELLS = [(b, p) for b in BROKERS for p in POOLS]


@dataclass
class Cell:
    """One broker, one pool, one worker."""

    broker: TestBroker
    pool: str
    ef: EmergencyFleet
    worker: WorkerProcess

    @property
    def fleet(self) -> Fleet:
        return self.ef.fleet

    @property
    def queue(self) -> str:
        return self.ef.queue("m1")

    def reset(self) -> None:
        self.ef.reset()


@pytest.fixture(scope="session", params=CELLS, ids=[f"{b}-{p}" for b, p in CELLS])
def cell(
    request: pytest.FixtureRequest,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cell]:
    kind, pool = request.param
    prefix = f"tm{uuid.uuid4().hex[:8]}"
    if kind == "rabbitmq":
        url = request.getfixturevalue("rabbitmq_url")
        broker = TestBroker("rabbitmq", url, keyprefix=f"{prefix}:r:", result_backend=redis_url)
    else:
        broker = TestBroker("redis", redis_url, keyprefix=f"{prefix}:b:")
    env = fleet_environment(tmp_path_factory.mktemp(f"matrix-{kind}-{pool}"), prefix)
    env.update(broker.env())
    env["CELERY_PREFETCH_MULTIPLIER"] = "1"
    fleet = open_fleet(env, app_module="tests.emergency.app", concurrency=2)
    ef = EmergencyFleet(fleet)
    try:
        worker = fleet.start_worker("m1", [ef.queue("m1")], pool=pool)
        yield Cell(broker, pool, ef, worker)
    finally:
        close_fleet(fleet)
        for queue in (ef.queue("m1"),):
            broker.delete_queue(queue)
        delete_prefix(redis_url, prefix)
