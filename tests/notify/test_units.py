"""The pure parts of notifications: signatures, backoff, which events are announced,
endpoint parsing and the settings that configure them."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from maintenance import Settings, ValidationError
from maintenance.domain.history import MaintenanceEvent
from maintenance.notify import kinds
from maintenance.notify.delivery import backoff
from maintenance.notify.endpoints import parse_endpoint, parse_endpoints
from maintenance.notify.payloads import envelope, slack_body
from maintenance.notify.signing import signature_header, verify


def receiver_verifies(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The receiver-side check exactly as docs/admin-guide.md shows it (no project imports)."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    timestamp, given = int(parts["t"]), parts["v1"]
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, given)


def test_a_signature_verifies_only_for_its_body_secret_and_time() -> None:
    body = b'{"type":"maintenance.enabled"}'
    header = signature_header("s3cret", body)
    assert verify("s3cret", header, body)
    assert receiver_verifies("s3cret", header, body)
    assert not verify("s3cret", header, body + b" ")
    assert not verify("other", header, body)
    old = signature_header("s3cret", body, timestamp=int(time.time()) - 301)
    assert not verify("s3cret", old, body)
    assert not receiver_verifies("s3cret", old, body)
    assert not verify("s3cret", None, body) and not verify("s3cret", "v1=abc", body)


def test_backoff_doubles_is_capped_and_jittered_into_its_upper_half() -> None:
    base, cap = 2.0, 300.0
    ceilings = [backoff(n, base, cap, 0.999999) for n in range(1, 12)]
    floors = [backoff(n, base, cap, 0.0) for n in range(1, 12)]
    assert ceilings[:4] == pytest.approx([2.0, 4.0, 8.0, 16.0], rel=1e-5)
    assert max(ceilings) == pytest.approx(cap, rel=1e-5)
    assert all(f == pytest.approx(c / 2, rel=1e-5) for f, c in zip(floors, ceilings, strict=True))
    assert backoff(10_000, base, cap, 0.5) <= cap  # no overflow however long it fails


def _event(kind: str, **details: object) -> MaintenanceEvent:
    return MaintenanceEvent(kind=kind, actor="alice", reason="db upgrade", details=dict(details))


@pytest.mark.parametrize(
    ("kind", "details", "expected"),
    [
        (
            "maintenance_enabled",
            {"mode": "normal", "previous_mode": None},
            kinds.MAINTENANCE_ENABLED,
        ),
        ("maintenance_enabled", {"mode": "emergency"}, kinds.EMERGENCY_DECLARED),
        (
            "maintenance_updated",
            {"mode": "normal", "previous_mode": "normal"},
            kinds.MAINTENANCE_CHANGED,
        ),
        (
            "maintenance_updated",
            {"mode": "emergency", "previous_mode": "normal"},
            kinds.EMERGENCY_DECLARED,
        ),
        (
            "maintenance_updated",
            {"mode": "emergency", "previous_mode": "emergency"},
            kinds.MAINTENANCE_CHANGED,
        ),
        ("maintenance_disabled", {"mode": "normal"}, kinds.MAINTENANCE_DISABLED),
        ("maintenance_disabled", {"mode": "emergency"}, kinds.EMERGENCY_LIFTED),
        ("maintenance_overdue", {}, kinds.MAINTENANCE_OVERDUE),
        ("drained", {}, kinds.MAINTENANCE_DRAINED),
        ("job_terminated", {"outcome": "killed"}, kinds.JOB_TERMINATED),
        ("recovery_completed", {}, kinds.RECOVERY_FINISHED),
        ("propagation", {}, None),
        ("login_blocked", {}, None),
        ("emergency_activated", {}, None),
    ],
)
def test_which_events_are_announced_and_as_what(
    kind: str, details: dict[str, object], expected: str | None
) -> None:
    assert kinds.notification_type(_event(kind, **details)) == expected


def test_the_envelope_and_the_slack_body_say_the_same_thing() -> None:
    event = _event("maintenance_enabled", mode="normal", duration_seconds=1800)
    body = envelope("key-1", kinds.MAINTENANCE_ENABLED, event, 42)
    assert body["id"] == "key-1" and body["event"]["id"] == 42
    assert body["text"] == "alice enabled normal maintenance: db upgrade; expected to take 30 min."
    slack = slack_body(body)
    assert slack["text"] == f"Maintenance enabled: {body['text']}"
    assert slack["blocks"][0]["text"]["text"].startswith("*Maintenance enabled*")


def test_endpoints_get_stable_ids_and_labels_that_hide_paths_and_credentials() -> None:
    plain = parse_endpoint("https://ops:hunter2@hooks.example.com:8443/T0K3N?x=1")
    assert plain.label.startswith("https://hooks.example.com:8443/…")
    assert "T0K3N" not in plain.label and "hunter2" not in plain.label
    assert "hunter2" not in repr(plain) and "T0K3N" not in repr(plain)
    assert plain.authorization and plain.url == "https://hooks.example.com:8443/T0K3N?x=1"
    assert not plain.slack
    assert parse_endpoint("https://hooks.slack.com/services/A/B/C").slack
    forced = parse_endpoint("slack+https://chat.example.com/hooks/abc")
    assert forced.slack and forced.url == "https://chat.example.com/hooks/abc"
    assert parse_endpoint("https://a.example/x").id == parse_endpoint(" https://a.example/x ").id
    assert len(parse_endpoints(["https://a.example/x", "https://a.example/x"])) == 1


@pytest.mark.parametrize(
    "bad", ["ftp://host/x", "hooks.example.com/x", "https:///no-host", "http://[::1"]
)
def test_a_bad_url_is_refused_by_position_without_echoing_it(bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_endpoints(["https://ok.example/x", bad])
    assert "entry 2" in str(err.value) and bad not in str(err.value)


def test_settings_read_webhooks_and_the_announcement_lead_time_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "MAINTENANCE_WEBHOOK_URLS": " https://a.example/x , slack+https://b.example/y ,",
            "MAINTENANCE_WEBHOOK_SECRET": "s3cret",
            "MAINTENANCE_WEBHOOK_BACKOFF_MAX": "60",
            "MAINTENANCE_ANNOUNCE_BEFORE": "2h",
        }
    )
    assert settings.webhook_urls == ("https://a.example/x", "slack+https://b.example/y")
    assert settings.webhook_backoff_max == 60.0 and settings.announce_before == 7200.0
    assert "s3cret" not in repr(settings) and "a.example" not in repr(settings)
    assert Settings.from_env({"MAINTENANCE_ANNOUNCE_BEFORE": "0"}).announce_before == 0.0
    assert Settings.from_env({}).announce_before == 24 * 3600.0
    with pytest.raises(ValidationError, match="MAINTENANCE_ANNOUNCE_BEFORE"):
        Settings.from_env({"MAINTENANCE_ANNOUNCE_BEFORE": "soon"})
