"""Every way in to a Sentinel deployment reaches its master: the control plane's
clients (both URL spellings), Celery's broker and backend built by ``celeryconfig``,
and the same-server check session invalidation relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from kombu import Connection

from maintenance import Settings
from maintenance.redisconn import make_client, resolve_redis_url
from maintenance.session_index import same_server

from .cluster import SentinelCluster

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_both_spellings_reach_the_master(cluster: SentinelCluster) -> None:
    celery = ";".join(f"sentinel://127.0.0.1:{p}/0" for p in cluster.sentinel_ports)
    for settings in (
        Settings(redis_url=cluster.url),
        Settings(redis_url=celery, redis_sentinel_master=cluster.service),
    ):
        client = make_client(resolve_redis_url(settings))
        assert client.set("spelling", settings.redis_url or "")
        with redis.Redis(port=cluster.master_port()) as master:
            assert master.get("spelling") == (settings.redis_url or "").encode()
        # The pub/sub (blocking) client follows the same master.
        pubsub = make_client(resolve_redis_url(settings), blocking=True).pubsub()
        pubsub.subscribe("c")
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
        pubsub.close()


def test_same_server_tells_sentinel_masters_apart(cluster: SentinelCluster) -> None:
    a, b = make_client(cluster.url), make_client(cluster.url)
    other = make_client(cluster.url.replace(f"/{cluster.service}/", "/othermaster/"))
    plain = redis.Redis(port=cluster.master_port() or 0)
    assert same_server(a, b)
    assert not same_server(a, other)
    assert not same_server(a, plain)


def test_celeryconfig_gives_celery_its_own_sentinel_spelling(cluster: SentinelCluster) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "MAINTENANCE_"))}
    env.update(REDIS_URL=cluster.url, PYTHONPATH=str(ROOT))
    probe = (
        "import json, celeryconfig as c; print(json.dumps([c.broker_url, "
        "c.broker_transport_options, c.result_backend, c.result_backend_transport_options]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    broker, broker_options, backend, backend_options = json.loads(out.stdout.splitlines()[-1])
    assert broker.startswith("sentinel://") and broker == backend
    assert broker_options["master_name"] == backend_options["master_name"] == cluster.service
    # Kombu itself, with those settings, puts a message on the master and gets it back.
    with Connection(broker, transport_options=broker_options) as conn:
        queue = conn.SimpleQueue("sentinel-probe")
        queue.put({"hello": "sentinel"})
        assert queue.get(timeout=5).payload == {"hello": "sentinel"}
        queue.close()
    with redis.Redis(port=cluster.master_port()) as master:
        assert master.exists("_kombu.binding.sentinel-probe")
