"""``/metrics`` in Prometheus format, from a registry of our own.

Fleet-wide values (status, blocked attempts of the current activation, jobs,
node lag) are read when Prometheus scrapes; this process's refused requests
are counted as they happen. A scrape never fails because Redis or SQL is
down: ``maintenance_degraded`` says so instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..domain.modes import MaintenanceMode, OperationType

if TYPE_CHECKING:
    from ..service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.web.metrics")


class StatusCollector(Collector):
    """Gauges read from the control plane at scrape time."""

    def __init__(self, service: EnhancedMaintenanceModeService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        """Every fleet-wide gauge (see ``docs/web.md`` for the list)."""
        service = self.service
        degraded = 0
        try:
            status = service.get_maintenance_status()
            degraded = int(status.degraded)
        except Exception as exc:  # never fail a scrape
            log.warning("metrics: live status unavailable: %s", exc)
            status, degraded = service.status, 1
        yield _gauge(
            "maintenance_active", "1 while maintenance is in force.", int(status.is_active)
        )
        mode = GaugeMetricFamily(
            "maintenance_mode", "1 for the mode in force (all 0 when off).", labels=["mode"]
        )
        for m in MaintenanceMode:
            mode.add_metric([m.value], int(status.is_active and status.mode is m))
        yield mode
        yield _gauge("maintenance_status_version", "Version of the applied status.", status.version)
        remaining = status.retry_after()
        yield _gauge(
            "maintenance_seconds_remaining",
            "Seconds to the estimated end (0 when unknown or off).",
            remaining or 0,
        )
        yield _gauge("maintenance_active_jobs", "Jobs running now.", status.active_jobs_count)
        yield _gauge(
            "maintenance_deferred_jobs",
            "Jobs deferred, awaiting requeue.",
            status.deferred_jobs_count,
        )
        yield _gauge(
            "maintenance_invalidated_sessions",
            "Sessions invalidated in the current activation.",
            status.invalidated_sessions,
        )
        yield from self._attempts(status.extra)
        nodes, nodes_failed = self._nodes(status.version)
        yield from nodes
        degraded = max(degraded, nodes_failed)
        yield _gauge(
            "maintenance_degraded",
            "1 when Redis or SQL is unreachable or the SQL store is not the fleet's.",
            degraded,
        )

    def _attempts(self, extra: dict[str, object]) -> Iterator[Metric]:
        for name, key, text in (
            ("maintenance_blocked_attempts", "blocked_attempts", "Refused attempts"),
            ("maintenance_would_block_attempts", "would_block_attempts", "TEST-mode would-blocks"),
        ):
            family = GaugeMetricFamily(
                name, f"{text} in the current activation, fleet-wide.", labels=["operation"]
            )
            counts = extra.get(key) or {}
            assert isinstance(counts, dict)
            for op in self.service.operations:
                family.add_metric([op.value], int(counts.get(op.value, 0)))
            yield family

    def _nodes(self, version: int) -> tuple[list[Metric], int]:
        lag = GaugeMetricFamily(
            "maintenance_node_lag_versions",
            "Status versions a live node is behind this one.",
            labels=["node", "kind"],
        )
        age = GaugeMetricFamily(
            "maintenance_node_heartbeat_age_seconds",
            "Seconds since a live node's last heartbeat.",
            labels=["node", "kind"],
        )
        failed = 0
        try:
            now = time.time()
            for node in self.service.nodes().values():
                lag.add_metric([node.node_id, node.kind], max(0, version - node.applied_version))
                age.add_metric([node.node_id, node.kind], max(0.0, now - node.last_seen))
        except Exception as exc:
            log.warning("metrics: node registry unavailable: %s", exc)
            failed = 1
        return [lag, age], failed


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


class WebMetrics:
    """The registry behind ``/metrics`` and this process's request counters."""

    def __init__(self, service: EnhancedMaintenanceModeService) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatusCollector(service))
        self.blocked_requests = Counter(
            "maintenance_http_blocked_requests",
            "HTTP requests this process refused because of maintenance.",
            ["operation"],
            registry=self.registry,
        )
        self.would_block_requests = Counter(
            "maintenance_http_would_block_requests",
            "HTTP requests this process would have refused (TEST mode).",
            ["operation"],
            registry=self.registry,
        )

    def count_request(self, operation: OperationType, *, would_block: bool) -> None:
        """Count one refused (or would-be-refused) request."""
        counter = self.would_block_requests if would_block else self.blocked_requests
        counter.labels(operation.value).inc()

    def view(self) -> Response:
        """The exposition."""
        return Response(
            generate_latest(self.registry),
            content_type=CONTENT_TYPE_LATEST,
            headers={"Cache-Control": "no-store"},
        )
