"""The OpenAPI document matches the real API: schemathesis generates valid and invalid
requests for every operation and checks status codes, content types, headers, bodies and
auth enforcement against the document, as an anonymous visitor, a user and an admin
(logged in through the app's real session cookie)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.modes import GenerationMode

from maintenance import EnhancedMaintenanceModeService
from tests.web.conftest import build_app, login

ROLES = ("anonymous", "user", "admin")
SAME_ORIGIN = {"Origin": "http://localhost"}


def _schema_app(service: EnhancedMaintenanceModeService) -> Flask:
    # Streams end quickly so every generated call returns.
    return build_app(service, MAINTENANCE_SSE_MAX_SECONDS=0.05, MAINTENANCE_SSE_HEARTBEAT=0.02)


def _session_cookie(app: Flask, role: str) -> dict[str, str]:
    """A real login session (the API's declared auth) for ``role``; none when anonymous."""
    if role == "anonymous":
        return {}
    client = login(app.test_client(), f"fuzz-{role}", role)
    cookie = client.get_cookie("session")
    assert cookie is not None
    return {"session": cookie.value}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("role", ROLES)
def test_every_operation_conforms_to_the_document(
    web_service: EnhancedMaintenanceModeService, role: str, mode: GenerationMode
) -> None:
    app = _schema_app(web_service)
    schema = schemathesis.openapi.from_wsgi("/api/maintenance/openapi.json", app)
    cookies = _session_cookie(app, role)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11  # schemathesis skips the document's own path
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            # A case whose invalid part is the auth cookie must go out without ours.
            bad_auth = case.meta is not None and case.meta.is_negative_at(ParameterLocation.COOKIE)
            case.call_and_validate(headers=SAME_ORIGIN, cookies={} if bad_auth else cookies)

        try:
            check()
        except Unsatisfiable:
            # An operation without inputs (GET /status) has no invalid request to make.
            assert mode is GenerationMode.NEGATIVE, operation.label
