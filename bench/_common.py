"""Shared helpers for the benchmarks: settings on the embedded default, percentiles,
verdicts, key clean-up."""

from __future__ import annotations

import atexit
import os
import statistics
import tempfile
import uuid
from pathlib import Path

import redis

from maintenance import Settings


def bench_settings(**overrides: object) -> Settings:
    """Settings from the environment; without REDIS_URL / a database URL, the embedded
    default in a temporary directory. Keys live under a fresh prefix."""
    tmp = Path(tempfile.mkdtemp(prefix="maintenance-bench-"))
    settings = Settings.from_env()
    changes: dict[str, object] = {"redis_prefix": f"bench{uuid.uuid4().hex[:8]}"}
    if not os.environ.get("MAINTENANCE_DATABASE_URL"):
        changes["database_url"] = f"sqlite:///{tmp / 'bench.db'}"
    if not os.environ.get("REDIS_URL"):
        changes["data_dir"] = str(tmp / "state")
        _stop_at_exit(tmp / "state")
    changes.update(overrides)
    return settings.replace(**changes)


def bench_redis_url() -> str:
    """``REDIS_URL``, else an embedded Redis in a temporary directory (stopped at exit)."""
    url = os.environ.get("REDIS_URL")
    if url:
        return url
    from maintenance.embedded import ensure_embedded_redis

    state = Path(tempfile.mkdtemp(prefix="maintenance-bench-")) / "state"
    _stop_at_exit(state)
    return ensure_embedded_redis(state)


def _stop_at_exit(data_dir: Path) -> None:
    from maintenance.embedded import stop_embedded_redis

    atexit.register(stop_embedded_redis, data_dir)


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) of ``samples``."""
    ordered = sorted(samples)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def verdict(ok: bool) -> str:
    """How a goal fared: ``MET`` or ``NOT MET``."""
    return "MET" if ok else "NOT MET"


def delete_keys(client: redis.Redis, pattern: str) -> int:
    """Delete every key matching ``pattern`` (SCAN, then UNLINK in batches); how many."""
    names = list(client.scan_iter(pattern, count=10_000))
    for start in range(0, len(names), 1000):
        client.unlink(*names[start : start + 1000])
    return len(names)


def summary(samples: list[float], unit: float = 1000.0) -> str:
    """p50 / p99 / max in milliseconds (``unit`` scales seconds)."""
    return (
        f"p50 {statistics.median(samples) * unit:7.3f} ms   "
        f"p99 {pct(samples, 99) * unit:7.3f} ms   max {max(samples) * unit:7.3f} ms"
    )
