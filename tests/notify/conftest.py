"""Fixtures: real webhook receivers, and settings that retry quickly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from maintenance import Settings
from tests.support import fast_settings

from .receiver import Receiver

SECRET = "whsec-test-secret"


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    """Start receivers (``Receiver`` keyword arguments); all stopped afterwards."""
    made: list[Receiver] = []

    def factory(**kwargs: Any) -> Receiver:
        receiver = Receiver(**kwargs).start()
        made.append(receiver)
        return receiver

    yield factory
    for receiver in made:
        receiver.stop()


def notify_settings(
    redis_url: str, database_url: str, prefix: str, urls: list[str], **overrides: Any
) -> Settings:
    """Fast settings with webhooks to ``urls``: retries within a second, short leases."""
    values: dict[str, Any] = {
        "webhook_urls": tuple(urls),
        "webhook_secret": SECRET,
        "webhook_timeout": 2.0,
        "webhook_backoff": 0.1,
        "webhook_backoff_max": 0.4,
        "webhook_lease": 5.0,
        "webhook_poll_interval": 0.1,
        **overrides,
    }
    return fast_settings(redis_url, database_url, prefix, **values)
