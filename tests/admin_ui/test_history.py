"""The panel's history pages through the whole event log, not only its newest events: 500
events written to SQL are paged through over plain HTTP (the page as rendered, and the
panel's ``/history`` JSON), in Chromium with JavaScript (fetching each page) and without
it (the form's buttons), with and without a kind filter, the total shown each time."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from maintenance import EnhancedMaintenanceModeService
from maintenance.domain.history import MaintenanceEvent
from maintenance.store.eventlog import EventLog
from tests.admin_ui.app import PANEL, LiveServer

pytestmark = pytest.mark.browser

WRITTEN = 500
PAGE = 10  # MAINTENANCE_ADMIN_HISTORY_PAGE's default
KINDS = ("consistency_check", "drained")
ROW_ID = re.compile(r'data-event-id="(\d+)"')
LABEL = re.compile(r'id="history-page"[^>]*>([^<]*)<')
OLDER = re.compile(r'<button type="submit" id="history-next"[^>]*value="(\d+)"([^>]*)>')


@pytest.fixture(scope="module")
def written(operator: EnhancedMaintenanceModeService) -> int:
    """500 events of two kinds, written in one transaction."""
    with operator.db.begin() as conn:
        for n in range(WRITTEN):
            event = MaintenanceEvent(KINDS[n % 2], actor="cli", reason=f"event {n}")
            EventLog.append_in(conn, event)
    return WRITTEN


def ids_in_log(service: EnhancedMaintenanceModeService, kind: str | None = None) -> list[int]:
    """Every event id of the log (of ``kind``), newest first, read from SQL."""
    kinds = (kind,) if kind else None
    return [int(e.id or 0) for e in service.history(10_000, kinds=kinds)]


def _pages_over_http(context: Any, kind: str | None) -> tuple[list[int], list[str]]:
    """Follow the rendered page's *Older* button from the first page to the last."""
    ids: list[int] = []
    labels: list[str] = []
    offset: int | None = 0
    while offset is not None:
        query = f"history_offset={offset}" + (f"&history_kind={kind}" if kind else "")
        response = context.request.get(f"{PANEL}?{query}")
        assert response.status == 200, response.text()
        html = response.text()
        ids += [int(i) for i in ROW_ID.findall(html)]
        label, older = LABEL.search(html), OLDER.search(html)
        assert label is not None and older is not None, html
        labels.append(label[1].strip())
        offset = None if "disabled" in older[2] else int(older[1])
    return ids, labels


def test_the_rendered_page_and_the_json_page_through_the_whole_log(
    admin_context: Any, operator: EnhancedMaintenanceModeService, written: int
) -> None:
    everything = ids_in_log(operator)
    assert len(everything) >= written
    ids, labels = _pages_over_http(admin_context, None)
    assert ids == everything  # each event once, newest first, none left out
    total = len(everything)
    assert labels[0] == f"1\u2013{PAGE} of {total}"
    assert labels[-1].endswith(f"\u2013{total} of {total}")
    assert len(labels) == -(-total // PAGE)

    drained, labels = _pages_over_http(admin_context, "drained")
    assert drained == ids_in_log(operator, "drained") and len(drained) == written // 2
    assert labels[0] == f"1\u2013{PAGE} of {written // 2}"

    # The panel's JSON page, as the page's script reads it: totals and the kinds held.
    body = admin_context.request.get(
        f"{PANEL}history?history_offset=490&history_kind=consistency_check"
    ).json()
    assert body["total"] == written // 2 and body["offset"] == 490 and body["limit"] == PAGE
    assert [e["id"] for e in body["events"]] == ids_in_log(operator, "consistency_check")[490:]
    assert set(KINDS) <= set(body["kinds"])
    assert all(e["when"].endswith(" UTC") for e in body["events"])
    # The API pages the same log by offset or by id, with the total.
    api = admin_context.request.get("/api/maintenance/history?limit=100&offset=400").json()
    assert api["total"] == total and [e["id"] for e in api["events"]] == everything[400:500]
    below = admin_context.request.get(f"/api/maintenance/history?before_id={everything[99]}")
    assert [e["id"] for e in below.json()["events"]] == everything[100:150]


@pytest.mark.parametrize(
    "query",
    ["history_offset=-1", "history_offset=ten", f"history_offset={2**63}", "history_kind=nope"],
)
def test_bad_history_queries_are_refused(admin_context: Any, query: str) -> None:
    answer = admin_context.request.get(f"{PANEL}history?{query}")
    assert answer.status == 400 and answer.json()["error"] == "validation_error"
    assert answer.json()["field"] in {"history_offset", "history_kind"}
    assert admin_context.request.get(f"{PANEL}?{query}").status == 400


def _page_through(panel: Any) -> list[int]:
    """Click *Older* until it is disabled; the ids of every row shown, in order."""
    rows = panel.locator("#history-table tbody tr")
    label = panel.locator("#history-page")
    ids: list[int] = []
    while True:
        shown = label.inner_text()
        ids += [int(i) for i in rows.evaluate_all("rs => rs.map(r => r.dataset.eventId)")]
        older = panel.locator("#history-next")
        if older.is_disabled():
            return ids
        start = int(shown.split("\u2013")[0])
        older.click()
        expect(label).to_contain_text(f"{start + PAGE}\u2013")


def test_chromium_pages_through_every_event_and_follows_new_ones(
    panel: Any, operator: EnhancedMaintenanceModeService, written: int
) -> None:
    everything = ids_in_log(operator)
    label = panel.locator("#history-page")
    expect(label).to_have_text(f"1\u2013{PAGE} of {len(everything)}")
    assert _page_through(panel) == everything
    expect(label).to_have_text(
        f"{(len(everything) - 1) // PAGE * PAGE + 1}\u2013{len(everything)} of {len(everything)}"
    )

    # Filtered by kind: the server pages the kind, the total is the kind's.
    panel.select_option("#history-kind", "drained")
    expect(label).to_have_text(f"1\u2013{PAGE} of {written // 2}")
    assert _page_through(panel) == ids_in_log(operator, "drained")
    expect(panel.locator("#history-table tbody tr[data-kind=drained]")).to_have_count(PAGE)

    # Back to every event, second page: a new event moves the total while the page stays.
    panel.select_option("#history-kind", "")
    expect(label).to_have_text(f"1\u2013{PAGE} of {len(everything)}")
    panel.click("#history-next")
    expect(label).to_have_text(f"11\u201320 of {len(everything)}")
    operator.events.append(MaintenanceEvent("consistency_check", actor="cli", reason="late"))
    expect(label).to_have_text(f"11\u201320 of {len(everything) + 1}")
    panel.click("#history-prev")
    expect(panel.locator("#history-table tbody tr").first).to_contain_text("late")
    assert panel.js_errors == []


def test_without_javascript_the_form_pages_the_history(
    browser: Any, server: LiveServer, operator: EnhancedMaintenanceModeService, written: int
) -> None:
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    try:
        assert context.request.get("/login?username=root&role=admin").ok
        page = context.new_page()
        page.goto(PANEL)
        total = len(ids_in_log(operator))
        expect(page.locator("#history-page")).to_have_text(f"1\u2013{PAGE} of {total}")
        page.click("#history-next")
        expect(page.locator("#history-page")).to_have_text(f"11\u201320 of {total}")
        page.select_option("#history-kind", "drained")
        page.click("#history-show")
        expect(page.locator("#history-page")).to_have_text(f"1\u2013{PAGE} of {written // 2}")
        page.click("#history-next")
        expect(page.locator("#history-page")).to_have_text(f"11\u201320 of {written // 2}")
        ids = [
            r.get_attribute("data-event-id") for r in page.locator("#history-table tbody tr").all()
        ]
    finally:
        context.close()
    assert [int(i) for i in ids] == ids_in_log(operator, "drained")[10:20]
