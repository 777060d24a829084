"""/metrics: Prometheus exposition of maintenance state, blocked attempts, jobs and node lag."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from maintenance import EnhancedMaintenanceModeService
from maintenance.store import schema
from tests.web.test_gate import enable


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_report_state_attempts_jobs_and_node_lag(
    app: Flask,
    user_client: FlaskClient,
    operator: EnhancedMaintenanceModeService,
    web_service: EnhancedMaintenanceModeService,
) -> None:
    before = scrape(app.test_client())
    assert before[("maintenance_active", ())] == 0
    assert before[("maintenance_mode", (("mode", "normal"),))] == 0

    enable(operator, duration="10m")
    user_client.post("/jobs")
    user_client.post("/jobs")
    user_client.post("/captions/generate")
    web_service.redis.hset(
        web_service.keys.active_jobs, "task-1", json.dumps({"name": "captions.generate"})
    )
    now = datetime.now(UTC)
    with web_service.db.begin() as conn:
        conn.execute(
            sa.insert(schema.jobs).values(
                original_id="t-deferred",
                task_name="images.optimize",
                state="deferred",
                kind="deferred",
                created_at=now,
                updated_at=now,
            )
        )
    web_service.cache.registry.heartbeat("worker@lagging:1:x", 0, {"kind": "worker"})

    got = scrape(app.test_client())
    version = operator.status.version
    assert got[("maintenance_active", ())] == 1
    assert got[("maintenance_mode", (("mode", "normal"),))] == 1
    assert got[("maintenance_mode", (("mode", "emergency"),))] == 0
    assert got[("maintenance_status_version", ())] == version
    assert 500 < got[("maintenance_seconds_remaining", ())] <= 600
    assert got[("maintenance_blocked_attempts", (("operation", "job_creation"),))] == 2
    assert got[("maintenance_blocked_attempts", (("operation", "caption_generation"),))] == 1
    assert got[("maintenance_http_blocked_requests_total", (("operation", "job_creation"),))] == 2
    assert got[("maintenance_active_jobs", ())] == 1
    assert got[("maintenance_deferred_jobs", ())] == 1
    lag = {k[1]: v for k, v in got.items() if k[0] == "maintenance_node_lag_versions"}
    assert lag[(("kind", "worker"), ("node", "worker@lagging:1:x"))] == version
    web_node = web_service.cache.node_id
    assert lag[(("kind", "web"), ("node", web_node))] == 0
    assert got[("maintenance_degraded", ())] == 0


def test_test_mode_would_blocks_are_exported(
    user_client: FlaskClient, app: Flask, operator: EnhancedMaintenanceModeService
) -> None:
    enable(operator, mode="test")
    user_client.post("/review/batch")
    got = scrape(app.test_client())
    assert got[("maintenance_mode", (("mode", "test"),))] == 1
    assert got[("maintenance_would_block_attempts", (("operation", "batch_operations"),))] == 1
    key = ("maintenance_http_would_block_requests_total", (("operation", "batch_operations"),))
    assert got[key] == 1


def test_a_scrape_survives_redis_being_down(make_service) -> None:  # type: ignore[no-untyped-def]
    from tests.services import PrivateRedis
    from tests.web.conftest import build_app

    private = PrivateRedis().start()
    try:
        service = make_service(kind="web", redis_url=private.url).start()
        app = build_app(service)
        private.kill()
        got = scrape(app.test_client())
        assert got[("maintenance_degraded", ())] == 1
        assert got[("maintenance_active", ())] == 0
    finally:
        private.close()
