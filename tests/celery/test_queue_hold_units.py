"""``MAINTENANCE_HOLD_QUEUES`` and which tasks route to which queue (no broker needed)."""

from __future__ import annotations

import pytest
from celery import Celery

from maintenance import Settings
from maintenance.errors import ValidationError
from workers.queue_hold import AUTO, queue_of, task_routes


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ()),
        ("", ()),
        ("off", ()),
        ("auto", (AUTO,)),
        ("AUTO", (AUTO,)),
        ("exports, reports", ("exports", "reports")),
    ],
)
def test_hold_queues_setting(raw: str | None, expected: tuple[str, ...]) -> None:
    env = {} if raw is None else {"MAINTENANCE_HOLD_QUEUES": raw}
    assert Settings.from_env(env).hold_queues == expected


@pytest.mark.parametrize("raw", ["a*,b", ",", "exports,re ports"])
def test_hold_queues_setting_refuses_what_is_no_queue_name(raw: str) -> None:
    with pytest.raises(ValidationError, match="MAINTENANCE_HOLD_QUEUES"):
        Settings.from_env({"MAINTENANCE_HOLD_QUEUES": raw})


def test_task_routes_follow_routes_task_queue_and_the_default() -> None:
    app = Celery("routes", set_as_current=False)
    app.conf.task_default_queue = "main"
    app.conf.task_routes = {"exports.*": {"queue": "exports"}}

    @app.task(name="exports.csv", shared=False)
    def csv() -> None: ...

    @app.task(name="images.resize", queue="images", shared=False)
    def resize() -> None: ...

    @app.task(name="mail.send", shared=False)
    def send() -> None: ...

    app.finalize()
    routes = task_routes(app)
    assert routes["exports"] == {"exports.csv"}
    assert routes["images"] == {"images.resize"}
    assert "mail.send" in routes["main"]
    assert queue_of({"routing_key": "exports"}) == "exports" and queue_of(None) is None


def test_nodes_listing_says_which_queues_a_worker_holds() -> None:
    from maintenance.cli.render import render_nodes
    from maintenance.nodes import NodeInfo

    worker = NodeInfo("worker@h:1:a", 3, 0.0, {"kind": "worker", "held_queues": ["exports"]})
    web = NodeInfo("web@h:2:b", 3, 0.0, {"kind": "web"})
    text = render_nodes({n.node_id: n for n in (worker, web)}, 3)
    lines = text.splitlines()
    assert "holding exports" in next(line for line in lines if "worker@" in line)
    assert "holding" not in next(line for line in lines if "web@" in line)
