"""The JSON API's answers to hostile bodies and queries: 4xx JSON, nothing changed."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from maintenance import EnhancedMaintenanceModeService
from maintenance.domain.validation import MAX_JSON_BYTES
from tests.web.test_api import API, SAME_ORIGIN

WRITES = (
    "/enable",
    "/disable",
    "/sessions/invalidate",
    "/login-block",
    "/bypass-link",
    "/emergency",
    "/emergency/deactivate",
)


def raw_post(client: FlaskClient, path: str, data: bytes | str) -> object:
    return client.post(
        f"{API}{path}",
        data=data,
        headers={**SAME_ORIGIN, "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('{"reason": "\\ud800"}', 400),
        ('{"reason": "x", "mode": "\\udfff"}', 400),
        ('{"\\ud800": 1}', 400),
        ('{"reason": "x\\u001b[2J"}', 400),
        ('{"reason": "x", "wait": NaN}', 400),
        ('{"reason": "x", "wait": Infinity}', 400),
        ('{"reason": "x", "wait": 1e309}', 400),
        ('{"reason": "x", "expected_version": 99999999999999999999999}', 400),
        ('{"reason": "x", "expected_version": -1}', 400),
        ('{"reason": "x", "duration": "\\u0663m"}', 400),
        ('{"reason": "x", "duration": 1e400}', 400),
        ('{"reason": ' + "[" * 10_000 + "]" * 10_000 + "}", 400),
        ("[" * 100_000, 413),
        (b'{"reason": "caf\xe9"}', 400),
        ('{"reason": "' + "x" * MAX_JSON_BYTES + '"}', 413),
    ],
)
def test_hostile_bodies_get_a_4xx_json_answer_and_change_nothing(
    admin_client: FlaskClient,
    operator: EnhancedMaintenanceModeService,
    body: str | bytes,
    status: int,
) -> None:
    before = operator.state.load().version
    for path in WRITES:
        response = raw_post(admin_client, path, body)
        assert response.status_code == status, (path, response.get_data(as_text=True)[:300])  # type: ignore[attr-defined]
        assert response.is_json, path  # type: ignore[attr-defined]
        assert response.get_json()["error"] in ("validation_error", "payload_too_large")  # type: ignore[attr-defined]
    assert operator.state.load().version == before


def test_a_required_reason_of_zero_width_characters_is_blank(
    admin_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    for path in ("/enable", "/emergency"):
        response = raw_post(admin_client, path, '{"reason": "\\u200b\\u200c\\ufeff"}')
        assert response.status_code == 400, path  # type: ignore[attr-defined]
        assert response.get_json()["field"] == "reason"  # type: ignore[attr-defined]
    assert operator.state.load().version == 0


def test_history_refuses_unknown_kinds(admin_client: FlaskClient) -> None:
    response = admin_client.get(f"{API}/history?kind=nope")
    assert response.status_code == 400 and response.get_json()["field"] == "kind"
    assert admin_client.get(f"{API}/history?kind=maintenance_enabled").status_code == 200


def test_line_breaks_in_a_reason_become_a_space(
    admin_client: FlaskClient, operator: EnhancedMaintenanceModeService
) -> None:
    response = admin_client.post(
        f"{API}/enable", json={"reason": "db\r\nupgrade", "wait": 0}, headers=SAME_ORIGIN
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert operator.state.load().reason == "db upgrade"
