"""The active-job registry in the core (real Redis): the one parser every reader uses, the
running/queued split, and reaping of dead workers' and stale queued entries."""

from __future__ import annotations

import json
import time

from maintenance import EnhancedMaintenanceModeService
from maintenance.job_registry import QUEUED, QUEUED_MAX_AGE, ActiveJob, JobRegistry
from maintenance.web.admin.jobs import running_jobs


def _registry(service: EnhancedMaintenanceModeService) -> JobRegistry:
    return JobRegistry(service.redis, service.keys)


def test_entries_round_trip_and_foreign_values_get_defaults_or_are_left_out(
    service: EnhancedMaintenanceModeService,
) -> None:
    registry = _registry(service)
    job = ActiveJob("t1", "captions.generate", "caption_generation", "w1@h", "n1", 7, 1.5)
    registry.add(job)
    key = service.keys.active_jobs
    service.redis.hset(key, "bare", json.dumps({"started": 2.0}))  # an older writer
    service.redis.hset(key, "torn", "{not json")
    service.redis.hset(key, "list", "[1, 2]")

    found = registry.all()
    assert found["t1"] == job
    assert found["bare"] == ActiveJob("bare", "?", "unknown", started=2.0)
    assert "torn" not in found and "list" not in found
    # The admin panel reads through the same parser.
    assert [j.task_id for j in running_jobs(service)] == ["t1", "bare"]  # oldest first
    assert registry.listed(["t1", "torn", "gone"]) == [True, True, False]
    assert registry.remove("t1", "gone") == 1 and "t1" not in registry.all()


def test_queued_continuations_are_not_running(service: EnhancedMaintenanceModeService) -> None:
    registry = _registry(service)
    registry.add(ActiveJob("run", "a", "caption_generation", started=2.0))
    registry.add(ActiveJob("next", "b", "caption_generation", started=1.0, state=QUEUED))
    assert [j.task_id for j in registry.running()] == ["run"]
    assert registry.count() == 2


def test_reap_removes_dead_workers_and_stale_queued_entries_only(
    service: EnhancedMaintenanceModeService,
) -> None:
    registry = _registry(service)
    now = time.time()
    registry.add(ActiveJob("live", "a", "x", node="n-live", started=now - 60))
    registry.add(ActiveJob("dead", "a", "x", node="n-dead", started=now - 60))
    registry.add(ActiveJob("young", "a", "x", node="n-dead", started=now))  # within grace
    registry.add(ActiveJob("stale", "a", "x", state=QUEUED, started=now - QUEUED_MAX_AGE - 1))
    registry.add(ActiveJob("fresh", "a", "x", state=QUEUED, started=now))

    reaped = registry.reap({"n-live"}, grace=10.0)
    assert sorted(j.task_id for j in reaped) == ["dead", "stale"]
    assert sorted(registry.all()) == ["fresh", "live", "young"]
