"""One enable-request model: the OpenAPI document, the panel's form (server and page) and
its scripts in a real Chromium all check against the limits of ``maintenance.domain``,
and none keeps a copy of its own."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask
from werkzeug.datastructures import MultiDict

from maintenance import EnhancedMaintenanceModeService, ValidationError
from maintenance.domain.enable_request import EnableRequest, limits
from maintenance.domain.validation import (
    DURATION_UNITS,
    EXACT_DURATION_PATTERN,
    EXACT_DURATION_UNITS,
    MAX_DURATION,
    MAX_REASON,
    MAX_WAIT,
    parse_duration,
)
from maintenance.web.admin.forms import parse_enable
from tests.admin_ui.app import PANEL, build_app

#: Texts on both sides of every limit of the duration grammars.
DURATIONS = [
    *(
        f"{MAX_DURATION // DURATION_UNITS[u] + extra}{u}"
        for u in DURATION_UNITS
        for extra in (0, 1)
    ),
    *("90", "90s", " 30m ", "1h30m", "1.5h", "6d24h", "7d1s", "0s", "01m", "soon", "10q", "m"),
]


def _admin_page(app: Flask) -> str:
    client = app.test_client()
    assert client.get("/login?username=root&role=admin").status_code == 200
    return client.get(PANEL).get_data(as_text=True)


def _page_config(page: str) -> dict[str, Any]:
    block = re.search(r'id="admin-page">(.*?)</script>', page, re.S)
    assert block
    return dict(json.loads(block.group(1)))


def _api_accepts(duration: str) -> bool:
    try:
        EnableRequest.from_json({"reason": "x", "duration": duration}, "ops")
    except ValidationError:
        return False
    return True


def test_the_openapi_document_states_the_models_limits(
    service: EnhancedMaintenanceModeService,
) -> None:
    app = build_app(service)
    schemas = app.test_client().get("/api/maintenance/openapi.json").get_json()["components"]
    enable = schemas["schemas"]["EnableRequest"]["properties"]
    assert enable["reason"]["maxLength"] == MAX_REASON
    seconds, text, _null = enable["duration"]["anyOf"]
    assert seconds["maximum"] == MAX_DURATION
    assert text["pattern"] == EXACT_DURATION_PATTERN
    for body in ("EnableRequest", "DisableRequest", "EmergencyRequest", "EmergencyOffRequest"):
        wait = schemas["schemas"][body]["properties"]["wait"]["anyOf"][0]
        assert (wait["minimum"], wait["maximum"]) == (0, MAX_WAIT), body
    # The document's pattern accepts exactly the texts the API reads.
    pattern = re.compile(text["pattern"])
    for duration in DURATIONS:
        assert bool(pattern.search(duration)) is _api_accepts(duration), duration
    for unit in EXACT_DURATION_UNITS:
        assert pattern.search(f"{MAX_DURATION // DURATION_UNITS[unit]}{unit}"), unit


def test_the_form_reads_the_models_limits_on_the_server_and_hands_them_to_the_page(
    service: EnhancedMaintenanceModeService,
) -> None:
    page = _admin_page(build_app(service))
    assert _page_config(page)["limits"] == limits()
    assert set(re.findall(r'maxlength="(\d+)"', page)) == {str(MAX_REASON)}
    assert f"[{''.join(DURATION_UNITS)}]?" in page  # the duration input's pattern

    def errors(**fields: str) -> dict[str, str]:
        form = MultiDict({"mode": "normal", **fields})
        return parse_enable(form, emergency_phrase="EMERGENCY", actor="root").errors

    assert errors(reason="r" * MAX_REASON, duration=f"{MAX_DURATION}s") == {}
    assert "reason" in errors(reason="r" * (MAX_REASON + 1))
    assert "duration" in errors(reason="ok", duration=f"{MAX_DURATION + 1}s")


@pytest.mark.browser
def test_the_scripts_check_the_limits_the_page_hands_them(panel: Any) -> None:
    """validate.js knows no number of its own: given the page's limits it draws the
    model's lines, given other limits it draws those."""
    found = panel.evaluate(
        """async (durations) => {
            const src = document.querySelector("script[type=module]").src;
            const { rulesFor } = await import(src.replace("admin.js", "validate.js"));
            const config = JSON.parse(document.getElementById("admin-page").textContent);
            const limits = config.limits;
            const rules = rulesFor(limits);
            const tiny = rulesFor(
                { ...limits, max_reason: 7, max_duration: 120, max_duration_text: "120 s" });
            const phrase = config.emergency_phrase;
            return {
                limits,
                atMax: rules.checkReason("x".repeat(limits.max_reason)),
                over: rules.checkReason("x".repeat(limits.max_reason + 1)),
                durations: durations.map((d) => rules.parseDuration(d)),
                tinyReason: rules.checkReason("x".repeat(8)) === null
                    && tiny.checkReason("x".repeat(8)) !== null,
                tinyDuration: tiny.parseDuration("3m").error || null,
                modes: limits.modes.map((mode) => rules.enableErrors(
                    { reason: "ok", duration: "", mode, confirm_emergency: phrase }, phrase)),
            };
        }""",
        DURATIONS,
    )
    assert found["limits"] == json.loads(json.dumps(limits()))
    assert found["atMax"] is None
    assert f"at most {MAX_REASON} allowed" in found["over"]
    for text, verdict in zip(DURATIONS, found["durations"], strict=True):
        try:
            expected: dict[str, Any] = {"seconds": parse_duration(text)}
        except ValidationError:
            assert "error" in verdict, text
        else:
            assert verdict == expected, text
    assert found["tinyReason"] is True
    assert found["tinyDuration"] == "duration must be at most 120 s"
    assert found["modes"] == [{} for _ in limits()["modes"]]
    assert panel.js_errors == []
