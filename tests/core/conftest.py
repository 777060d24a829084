"""Fixtures shared by the core tests."""

from __future__ import annotations

import os

import pytest

from maintenance import Settings


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "MAINTENANCE_DATABASE_URL": settings.database_url,
        "MAINTENANCE_REDIS_PREFIX": settings.redis_prefix,
        "MAINTENANCE_ACTOR": "tester",
    }
