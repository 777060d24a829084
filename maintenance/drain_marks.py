"""The drain's marks in Redis: the once-per-activation announcement (``{p}:drained:<id>``)
and the ``{p}:drained`` channel that wakes whoever waits for it."""

from __future__ import annotations

import json
import time

import redis

from .keys import Keys
from .redisconn import as_text

ANNOUNCED_TTL = 7 * 24 * 3600


def claim_announcement(client: redis.Redis, keys: Keys, activation_id: str) -> bool:
    """True for the one caller, fleet-wide, that announces the drain of ``activation_id``."""
    key = keys.drain_announced(activation_id)
    return bool(client.set(key, str(time.time()), nx=True, ex=ANNOUNCED_TTL))


def release_announcement(client: redis.Redis, keys: Keys, activation_id: str) -> None:
    """Give the claim back (the drain could not be recorded): a later check announces it."""
    client.delete(keys.drain_announced(activation_id))


def publish(client: redis.Redis, keys: Keys, activation_id: str) -> None:
    """Tell every waiter (``wait_for_drain``) that ``activation_id`` drained."""
    client.publish(keys.drained, json.dumps({"activation_id": activation_id, "at": time.time()}))


def announced_at(client: redis.Redis, keys: Keys, activation_id: str | None) -> float | None:
    """When the drain of ``activation_id`` was announced (unix seconds), if it was."""
    if not activation_id:
        return None
    raw = client.get(keys.drain_announced(activation_id))
    try:
        return float(as_text(raw)) if raw is not None else None
    except ValueError:
        return None
