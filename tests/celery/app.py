"""The Celery app the integration tests run: real tasks with countable side effects.

Worker subprocesses load it with ``-A tests.celery.app``; it is configured from
the top-level ``celeryconfig`` (which installs the maintenance hooks), with
every setting taken from the environment the test fixtures pass. Each task
counts its runs in Redis (``{TEST_COUNTER_PREFIX}:runs:{label}``) and can be
held until the test releases it.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery

_client: redis.Redis | None = None


def counters() -> redis.Redis:
    """A Redis client for side-effect counters (per process; redis-py is fork-aware)."""
    global _client
    if _client is None:
        # Counters live in the test Redis (the control plane's may be Sentinel's, the
        # broker RabbitMQ).
        url = (
            os.environ.get("TEST_COUNTER_URL")
            or os.environ.get("CELERY_BROKER_URL")
            or os.environ["REDIS_URL"]
        )
        _client = redis.Redis.from_url(url)
    return _client


def key(name: str) -> str:
    """A counter key under the test's own prefix."""
    return f"{os.environ['TEST_COUNTER_PREFIX']}:{name}"


def run(label: str, hold: str | None = None) -> str:
    """The body of every test task: mark started, wait for release if held, count the run."""
    client = counters()
    client.set(key(f"started:{label}"), os.getpid())
    if hold:
        deadline = time.monotonic() + 60
        while not client.exists(key(f"release:{hold}")) and time.monotonic() < deadline:
            time.sleep(0.01)
    pipe = client.pipeline()
    pipe.incr(key(f"runs:{label}"))
    pipe.rpush(key("order"), label)
    pipe.execute()
    return label


def register_tasks(app: Celery) -> dict[str, Any]:
    """Define the test tasks on ``app``; returns them by short name."""

    @app.task(shared=False, name="captions.generate_caption")
    def generate_caption(label: str, hold: str | None = None) -> str:
        return run(label, hold)

    @app.task(shared=False, name="images.optimize_image")
    def optimize_image(label: str, hold: str | None = None) -> str:
        return run(label, hold)

    # Classified UNKNOWN by name (blocked in NORMAL) but declared read-only.
    @app.task(shared=False, name="reports.build", operation_type="read_operations")
    def build_report(label: str) -> str:
        return run(label)

    @app.task(shared=False, name="captions.step")
    def step(previous: Any, label: str, hold: str | None = None) -> str:
        return run(label, hold)

    @app.task(shared=False, name="captions.collect")
    def collect(results: list[str], label: str) -> str:
        return run(label)

    @app.task(shared=False, name="captions.fan_out", bind=True)
    def fan_out(self: Any, label: str, children: int, hold: str | None = None) -> str:
        run(label, hold)
        for i in range(children):
            generate_caption.delay(f"{label}-child-{i}")
        return label

    # A read-only job that publishes caption work: during maintenance that is new work.
    @app.task(shared=False, name="reports.build_then_caption", operation_type="read_operations")
    def build_then_caption(label: str) -> str:
        run(label)
        generate_caption.delay(f"{label}-caption")
        return label

    @app.task(
        shared=False, name="captions.retry_once", bind=True, max_retries=2, default_retry_delay=0
    )
    def retry_once(self: Any, label: str, hold: str | None = None) -> str:
        if self.request.retries == 0:
            run(f"{label}-attempt", hold)
            raise self.retry(countdown=0)
        return run(label)

    return {
        "generate_caption": generate_caption,
        "optimize_image": optimize_image,
        "build_report": build_report,
        "step": step,
        "collect": collect,
        "fan_out": fan_out,
        "retry_once": retry_once,
        "build_then_caption": build_then_caption,
    }


def make_app(config: dict[str, Any] | None = None) -> Celery:
    """An app with the test tasks: from ``celeryconfig`` (workers) or from ``config``."""
    if config is None:
        app = Celery("maintenance_tests")
        # Read now, not on first use: importing celeryconfig installs the hooks,
        # and a publish must not be the thing that first loads the config.
        app.config_from_object("celeryconfig", force=True)
    else:
        app = Celery("maintenance_tests_publisher", set_as_current=False)
        app.conf.update(config)
    register_tasks(app)
    return app


# Worker subprocesses and `celery -A tests.celery.app call` use this one.
app = make_app() if os.environ.get("TEST_CELERY_WORKER") else None
