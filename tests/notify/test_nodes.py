"""Which processes deliver: a web node (from ``init_app``) and a Celery worker's main
process (with its housekeeping thread) -- the latter while every Celery publish is
refused. Administrators see delivery health in the status API; users do not."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from maintenance import OperationBlocked, build_service
from tests.celery.conftest import close_fleet, delete_prefix, fleet_environment, open_fleet
from tests.helpers import wait_for
from tests.web.conftest import build_app, login

from .conftest import SECRET, notify_settings
from .receiver import Receiver


def test_a_web_node_delivers_and_only_admins_see_how_deliveries_go(
    make_receiver: Callable[..., Receiver], redis_url: str, prefix: str, sqlite_url: str
) -> None:
    good = make_receiver(fail_first=1)
    broken = make_receiver(fail_first=10**6)
    settings = notify_settings(
        redis_url,
        sqlite_url,
        prefix,
        [f"{good.url}/hook", f"{broken.url}/hook"],
        webhook_failing_after=0.5,
    )
    service = build_service(settings, kind="web").start()
    try:
        app = build_app(service)
        assert service.notifier.delivering
        admin = login(app.test_client(), "root", "admin")
        enabled = admin.post("/api/maintenance/enable", json={"reason": "db upgrade"})
        assert enabled.status_code == 200, enabled.get_data(as_text=True)
        arrived = wait_for(lambda: list(good.accepted().values()), timeout=15, what="delivery")
        assert arrived[0].json()["type"] == "maintenance.enabled"

        def degraded() -> dict | None:
            body = admin.get("/api/maintenance/status").get_json()["notifications"]
            return body if body["degraded"] else None

        shown = wait_for(degraded, timeout=settings.webhook_failing_after + 10, what="degraded")
        by_port = {e["label"].split("/")[2].split(":")[1]: e for e in shown["endpoints"]}
        ok = by_port[good.url.rsplit(":", 1)[1]]
        failing = by_port[broken.url.rsplit(":", 1)[1]]
        assert ok["delivered"] == 1 and ok["last_error"] is None
        assert failing["pending"] == 1 and failing["last_error"] == "HTTP 500"
        assert shown["pending"] == 1 and "failing for" in shown["reason"]
        public = app.test_client().get("/api/maintenance/status").get_json()
        assert public["view"] == "public" and "notifications" not in public
    finally:
        service.close()
        service.db.dispose()
    assert not service.notifier.delivering


@pytest.mark.slow
def test_a_worker_main_process_delivers_while_celery_publishes_are_refused(
    make_receiver: Callable[..., Receiver], tmp_path: Path
) -> None:
    receiver = make_receiver()
    prefix = f"tn{uuid.uuid4().hex[:8]}"
    env = fleet_environment(tmp_path, prefix)
    env.update(
        MAINTENANCE_WEBHOOK_URLS=f"{receiver.url}/hook",
        MAINTENANCE_WEBHOOK_SECRET=SECRET,
        MAINTENANCE_WEBHOOK_POLL_INTERVAL="0.2",
    )
    fleet = open_fleet(env)
    try:
        fleet.start_worker("n1", [fleet.default_queue])
        # This process writes the notification; only the worker runs a deliverer.
        assert not fleet.service.notifier.delivering
        fleet.service.enable_maintenance("disk full", mode="emergency", enabled_by="carol")
        with pytest.raises(OperationBlocked):
            fleet.tasks["generate_caption"].delay("refused")
        arrived = wait_for(lambda: list(receiver.accepted().values()), timeout=30, what="sent")
        assert arrived[0].json()["type"] == "emergency.declared"
        fleet.service.disable_maintenance("carol", requeue=False)
        wait_for(lambda: len(receiver.accepted()) == 2, timeout=30, what="the lift")
        assert len(receiver.all()) == 2  # one deliverer per worker: pool children do not send
    finally:
        close_fleet(fleet)
        delete_prefix(env["REDIS_URL"], prefix)
