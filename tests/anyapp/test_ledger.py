"""A second app, sharing nothing with the captioner, under maintenance control: its own
operation types refused over HTTP and Celery with its own messages, its status and
OpenAPI in its own vocabulary, allowlists that cannot be spoofed, a GET route that
enqueues answered with the 503, and the worker's warning about a missing setting.
Real Redis, a real prefork worker, a real HTTP server."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from maintenance import ValidationError
from signals import PublishRefused
from tests.helpers import wait_for

from . import ledger
from .conftest import ROOT, Ledger, start_worker

SEED_KINDS = {"caption_generation", "job_creation", "platform_operations", "batch_operations"}
MESSAGES = {spec["name"]: spec["message"] for spec in ledger.OPERATIONS}
JSON = {"Accept": "application/json"}


def _enable(stack: Ledger, **kwargs: Any) -> None:
    result = stack.service.enable_maintenance(
        "ledger upgrade", duration="30m", enabled_by="ops", wait=20, **kwargs
    )
    assert result.fenced, result.to_dict()


def _from(stack: Ledger, source: str, method: str, path: str, headers: dict[str, str]) -> int:
    """The status of one request sent from loopback address ``source``."""
    parts = urlsplit(stack.url)
    conn = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=30, source_address=(source, 0)
    )
    try:
        conn.request(method, path, headers={**JSON, **headers})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_work_runs_while_maintenance_is_off(stack: Ledger) -> None:
    before = stack.runs("ledger.post_entry")
    assert requests.post(f"{stack.url}/ledger/entries", timeout=30).status_code == 202
    wait_for(lambda: stack.runs("ledger.post_entry") > before, timeout=60, what="posting ran")


def test_openapi_and_status_speak_the_ledgers_vocabulary(stack: Ledger) -> None:
    doc = requests.get(f"{stack.url}/api/maintenance/openapi.json", timeout=30).json()
    text = json.dumps(doc)
    assert "ledger_posting" in text and "report_export" in text
    assert not any(kind in text for kind in SEED_KINDS)
    enable = doc["components"]["schemas"]["EnableRequest"]["properties"]["blocked_operations"]
    names = enable["anyOf"][0]["items"]["enum"]
    assert names[:3] == ["ledger_posting", "report_export", "statement_run"]

    _enable(stack)
    status = requests.get(f"{stack.url}/api/maintenance/status", timeout=30).json()
    # NORMAL blocks the ledger's kinds that say so (statement_run waits for emergencies).
    assert set(status["blocked_operations"]) == {"ledger_posting", "report_export", "unknown"}
    blocked = requests.get(f"{stack.url}/api/maintenance/blocked-operations", timeout=30).json()
    listed = {entry["operation"]: entry for entry in blocked["blocked_operations"]}
    assert listed["report_export"]["message"] == MESSAGES["report_export"]
    assert listed["ledger_posting"]["label"] == "Ledger postings"
    kinds = {entry["operation"] for entry in blocked["operation_types"]}
    assert {"ledger_posting", "report_export", "statement_run"} <= kinds
    assert not kinds & SEED_KINDS


def test_unknown_kinds_are_refused_with_the_known_ones_listed(stack: Ledger) -> None:
    with pytest.raises(ValidationError) as caught:
        stack.service.enable_maintenance("x", blocked_operations=["caption_generation"])
    assert "caption_generation" in str(caught.value) and "ledger_posting" in str(caught.value)
    answer = requests.get(
        f"{stack.url}/api/maintenance/message", params={"operation": "batch_operations"}, timeout=30
    )
    assert answer.status_code == 400
    assert "report_export" in answer.json()["message"]


def test_custom_kinds_are_refused_over_http_with_their_own_messages(stack: Ledger) -> None:
    _enable(stack)
    posted = requests.post(f"{stack.url}/ledger/entries", headers=JSON, timeout=30)
    assert posted.status_code == 503
    body = posted.json()
    assert body["operation"] == "ledger_posting"
    assert body["title"] == "Postings are on hold"
    assert MESSAGES["ledger_posting"] in body["message"]
    page = requests.post(
        f"{stack.url}/reports/r1/export", headers={"Accept": "text/html"}, timeout=30
    )
    assert page.status_code == 503 and "text/html" in page.headers["Content-Type"]
    assert "Report exports are paused" in page.text
    # Reads go on.
    assert requests.get(f"{stack.url}/reports/r1", timeout=30).status_code == 200


def test_a_get_route_that_enqueues_gets_the_503(stack: Ledger) -> None:
    _enable(stack)
    answer = requests.get(f"{stack.url}/reports/r2/refresh", headers=JSON, timeout=30)
    assert answer.status_code == 503
    assert answer.json()["operation"] == "report_export"
    assert MESSAGES["report_export"] in answer.json()["message"]
    html = requests.get(f"{stack.url}/reports/r2/refresh", timeout=30)
    assert html.status_code == 503 and "Report exports are paused" in html.text


def test_custom_kinds_are_refused_over_celery_with_their_own_messages(stack: Ledger) -> None:
    _enable(stack)
    task = stack.celery.tasks["ledger.export_report"]
    with pytest.raises(PublishRefused) as caught:
        task.delay("r3")
    assert caught.value.operation == "report_export"
    assert MESSAGES["report_export"] in caught.value.message
    # statement_run is blocked by default only in emergencies: a NORMAL window lets it be.
    assert not stack.service.is_operation_blocked("statement_run")


def test_allowlisted_peer_and_path_pass_and_spoofing_does_not(stack: Ledger) -> None:
    before = stack.runs("ledger.post_entry")
    _enable(stack)
    spoof = {"X-Forwarded-For": "10.20.1.1"}
    # An untrusted peer (127.0.0.1) claiming an allowlisted address: refused.
    assert _from(stack, "127.0.0.1", "POST", "/ledger/entries", spoof) == 503
    # The same header from the trusted proxy (127.0.0.2): the client is allowlisted.
    assert _from(stack, "127.0.0.2", "POST", "/ledger/entries", spoof) == 202
    # A peer on the allowlist itself.
    assert _from(stack, "127.0.0.3", "POST", "/ledger/entries", {}) == 202
    # The trusted proxy forwarding a client that is not allowlisted: refused.
    assert (
        _from(stack, "127.0.0.2", "POST", "/ledger/entries", {"X-Forwarded-For": "8.8.8.8"}) == 503
    )
    # An allowlisted path and an exempt view, from anywhere; the tasks of every
    # allowlisted request are published and run.
    assert requests.post(f"{stack.url}/hooks/payments", headers=JSON, timeout=30).status_code == 200
    assert requests.post(f"{stack.url}/internal/reconcile", timeout=30).status_code == 200
    wait_for(lambda: stack.runs("ledger.post_entry") >= before + 3, timeout=60, what="passes ran")

    with stack.app.test_request_context():
        status = stack.app.extensions["maintenance"].api.get_status(admin=True)
    assert status["is_active"]
    admin = stack.app.test_client()
    with admin.session_transaction() as sess:
        sess["role"], sess["username"] = "admin", "ops"
    shown = admin.get("/api/maintenance/status").get_json()["allowlist"]
    assert shown["ips"] == ["10.20.0.0/16", "127.0.0.3/32"]
    assert shown["trusted_proxies"] == ["127.0.0.2/32"]
    assert shown["passes"] == {
        "ip:10.20.0.0/16": 1,
        "ip:127.0.0.3/32": 1,
        "path:/hooks/*": 1,
        "view:reconcile": 1,
    }


def test_a_worker_without_task_acks_late_says_what_breaks(ledger_stack: Ledger) -> None:
    env = {**ledger_stack.env, "LEDGER_ACKS_LATE": "0"}
    worker = start_worker(env, ledger_stack.directory, "ledger-noack", ledger_stack.service)
    try:
        log = wait_for(
            lambda: (
                "task_acks_late" in worker.log.read_text(errors="replace")
                and worker.log.read_text(errors="replace")
            ),
            timeout=30,
            what="the settings warning",
        )
    finally:
        worker.stop()
    lines = [line for line in log.splitlines() if "Celery setting" in line]
    assert len(lines) == 1, lines
    assert "task_acks_late should be True" in lines[0]
    assert "lost instead of coming back" in lines[0]
    main = ledger_stack.worker.log.read_text(errors="replace")
    assert "Celery setting" not in main


def test_idle_web_processes_are_nodes_a_fenced_enable_waits_for(stack: Ledger) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.anyapp.preload", "2"],
        cwd=ROOT,
        env=stack.env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line and line[0] == "ready", line
        pids = set(line[1:])

        def web_pids() -> set[str]:
            nodes = stack.service.nodes().values()
            return {n.node_id.split(":")[1] for n in nodes if n.kind == "web"}

        # The loading process and both forked workers, none of which served a request.
        wait_for(lambda: pids <= web_pids(), timeout=60, what="idle web processes registered")
        result = stack.service.enable_maintenance("deploy", enabled_by="ops", wait=60)
        assert result.fenced, result.to_dict()
        applied = {node.split(":")[1] for node in result.applied_nodes}
        assert pids <= applied
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_routes_prints_how_each_route_and_task_is_classified(stack: Ledger) -> None:
    runner = stack.app.test_cli_runner()
    result = runner.invoke(args=["maintenance", "--json", "routes"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    by_route = {(r["method"], r["rule"]): r for r in data["routes"]}
    assert by_route[("POST", "/ledger/entries")]["operation"] == "ledger_posting"
    assert by_route[("POST", "/ledger/entries")]["why"] == "blueprint rule ledger"
    assert by_route[("POST", "/reports/<report_id>/export")]["why"] == (
        "path rule /reports/*/export [POST]"
    )
    assert by_route[("GET", "/reports/<report_id>/refresh")]["operation"] == "read_operations"
    assert by_route[("GET", "/api/maintenance/status")]["operation"] == "status_check"
    tasks = {t["task"]: t for t in data["tasks"]}
    assert tasks["ledger.export_report"] == {
        "task": "ledger.export_report",
        "operation": "report_export",
        "why": "task option",
    }
    text = runner.invoke(args=["maintenance", "routes"]).output
    assert "/ledger/entries" in text and "ledger_posting" in text


def test_the_static_page_follows_every_change(stack: Ledger) -> None:
    page = stack.directory / "www" / "maintenance.html"

    def says(text: str) -> bool:
        return page.exists() and text in page.read_text()

    wait_for(lambda: says("the service is restarting"), timeout=30, what="page while off")
    _enable(stack)
    wait_for(lambda: says("ledger upgrade") and says("(in about "), timeout=30)
    stack.service.disable_maintenance("done", requeue=False, wait=20)
    wait_for(lambda: says("the service is restarting") and not says("ledger upgrade"), timeout=30)


def test_redirect_and_status_code_are_per_app(stack: Ledger) -> None:
    redirecting = ledger.create_app(
        stack.service,
        stack.celery,
        MAINTENANCE_REDIRECT_URL="/down",
        MAINTENANCE_REGISTER_ON_START=False,
    ).test_client()
    teapot = ledger.create_app(
        stack.service,
        stack.celery,
        MAINTENANCE_STATUS_CODE=429,
        MAINTENANCE_REGISTER_ON_START=False,
    ).test_client()
    _enable(stack)
    browser = redirecting.post("/ledger/entries", headers={"Accept": "text/html"})
    assert browser.status_code == 302 and browser.headers["Location"] == "/down"
    assert browser.headers["Retry-After"]
    assert redirecting.get("/down", headers={"Accept": "text/html"}).status_code == 200
    api = redirecting.post("/ledger/entries", headers=JSON)
    assert api.status_code == 503 and api.get_json()["operation"] == "ledger_posting"
    assert teapot.post("/ledger/entries", headers=JSON).status_code == 429


def _admin(stack: Ledger) -> Any:
    client = stack.app.test_client()
    with client.session_transaction() as sess:
        sess["role"], sess["username"] = "admin", "ops"
    return client


def test_panel_metrics_and_cli_speak_the_ledgers_vocabulary(stack: Ledger) -> None:
    page = _admin(stack).get("/admin/maintenance/").get_data(as_text=True)
    assert "Ledger postings" in page and "Report exports" in page and "Statement runs" in page
    assert "Caption generation" not in page
    _enable(stack)
    assert requests.post(f"{stack.url}/ledger/entries", headers=JSON, timeout=30).status_code == 503
    metrics = requests.get(f"{stack.url}/metrics", timeout=30).text
    assert 'maintenance_blocked_attempts{operation="ledger_posting"}' in metrics
    assert "caption_generation" not in metrics
    runner = stack.app.test_cli_runner()
    refused = runner.invoke(
        args=["maintenance", "enable", "--reason", "x", "--block", "caption_generation"]
    )
    assert refused.exit_code == 2
    assert "unknown operation type 'caption_generation'" in refused.output
    assert "ledger_posting" in refused.output
    chosen = runner.invoke(
        args=["maintenance", "enable", "--reason", "exports only", "--block", "report-export"]
    )
    assert chosen.exit_code == 0, chosen.output
    assert stack.service.state.load().blocked_operations == ("report_export",)


def test_a_rehearsal_records_the_ledgers_kinds(stack: Ledger) -> None:
    from maintenance.rehearsal import build_test_report

    result = stack.service.enable_maintenance("rehearsal", mode="test", enabled_by="ops", wait=20)
    assert result.fenced
    assert requests.post(f"{stack.url}/ledger/entries", headers=JSON, timeout=30).status_code == 202
    report = build_test_report(stack.service, probe=False)
    assert report["activation"]["would_block"] == ["ledger_posting", "report_export", "unknown"]

    def counted() -> dict[str, int]:
        return build_test_report(stack.service, probe=False)["would_block"]["counted_by_operation"]

    wait_for(lambda: counted().get("ledger_posting", 0) >= 2, timeout=30, what="would-blocks")
    # The request and the task it published: each would have been refused.
    assert counted() == {"ledger_posting": 2}


def test_a_process_with_another_vocabulary_cannot_enable(stack: Ledger) -> None:
    from maintenance import Settings, build_service

    # The plain environment: no declaration, so the seed's kinds (as `maintenance` would).
    outsider = build_service(Settings.from_env(stack.env), kind="cli", register=False)
    try:
        with pytest.raises(ValidationError) as caught:
            outsider.enable_maintenance("wrong vocabulary", enabled_by="ops")
        assert "ledger_posting,report_export,statement_run" in str(caught.value)
        assert "MAINTENANCE_OPERATIONS_FILE" in str(caught.value)
        assert not stack.service.state.load().is_active
    finally:
        outsider.close()
        outsider.db.dispose()
