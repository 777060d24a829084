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


def _schema_app(service: EnhancedMaintenanceModeService, **config: Any) -> Flask:
    # Streams end quickly so every generated call returns. The test client runs one
    # request at a time (``wsgi.multithread`` false), where every stream would be refused:
    # a cap makes the stream's 200 checked here (the refusal: test below).
    caps = {"MAINTENANCE_SSE_MAX_STREAMS": 100, "MAINTENANCE_SSE_MAX_ADMIN_STREAMS": 100}
    config = {**caps, **config}
    return build_app(
        service, MAINTENANCE_SSE_MAX_SECONDS=0.05, MAINTENANCE_SSE_HEARTBEAT=0.02, **config
    )


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


def test_a_refused_stream_answers_as_documented(
    web_service: EnhancedMaintenanceModeService,
) -> None:
    """Where no stream is admitted (caps detected on a one-request-at-a-time server, as the
    test client is), the 503 has the documented body and headers."""
    app = _schema_app(
        web_service, MAINTENANCE_SSE_MAX_STREAMS=None, MAINTENANCE_SSE_MAX_ADMIN_STREAMS=None
    )
    client = app.test_client()
    document = client.get("/api/maintenance/openapi.json").get_json()
    documented = document["paths"]["/stream"]["get"]["responses"]["503"]
    schema = document["components"]["schemas"]["StreamUnavailable"]
    refused = client.get("/api/maintenance/stream")
    assert refused.status_code == 503
    assert refused.mimetype in documented["content"]
    body = refused.get_json()
    assert set(body) == set(schema["properties"]) == set(schema["required"])
    assert body["error"] == schema["properties"]["error"]["const"]
    assert isinstance(body["retry_after"], int) and body["retry_after"] >= 1
    assert refused.headers["Retry-After"] == str(body["retry_after"])
    assert refused.headers["Cache-Control"] == "no-store"
    assert set(documented["headers"]) == {"Cache-Control", "Retry-After"}
