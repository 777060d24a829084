"""Input validation: clear errors for bad reasons, durations, modes and operations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from maintenance import MaintenanceMode, OperationType, ValidationError
from maintenance.domain.validation import (
    parse_duration,
    validate_actor,
    validate_mode,
    validate_operations,
    validate_reason,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("30m", 1800),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1.5h", 5400),
        (45, 45),
        (timedelta(minutes=2), 120),
        ("7d", 604800),
        ("1w", 604800),
    ],
)
def test_durations_in_every_accepted_form(text: object, seconds: int) -> None:
    assert parse_duration(text) == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "greater than zero"),
        (-5, "greater than zero"),
        ("8d", "at most 7 days"),
        ("10q", "not a duration"),
        ("", "empty"),
        ("m", "not a duration"),
        (True, "duration"),
    ],
)
def test_bad_durations_say_what_is_wrong(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_duration(value)  # type: ignore[arg-type]


def test_unknown_duration_stays_unknown() -> None:
    assert parse_duration(None) is None


def test_reason_is_required_and_at_most_500_characters() -> None:
    assert validate_reason("  db upgrade ") == "db upgrade"
    assert validate_reason("x" * 500) == "x" * 500
    for bad in ("", "   ", None, 3):
        with pytest.raises(ValidationError, match="reason is required"):
            validate_reason(bad)
    with pytest.raises(ValidationError, match="501 characters"):
        validate_reason("x" * 501)


def test_modes_operations_and_actors() -> None:
    assert validate_mode("EMERGENCY") is MaintenanceMode.EMERGENCY
    with pytest.raises(ValidationError, match="unknown maintenance mode"):
        validate_mode("panic")
    assert validate_operations("caption_generation, image-processing") == [
        OperationType.CAPTION_GENERATION,
        OperationType.IMAGE_PROCESSING,
    ]
    with pytest.raises(ValidationError, match="unknown operation type 'teleport'"):
        validate_operations(["teleport"])
    with pytest.raises(ValidationError, match="who is doing this"):
        validate_actor("")


def test_urls_are_redacted_before_printing() -> None:
    from maintenance.settings import redact_url

    assert redact_url("postgresql://app:s3cret@db:5432/prod") == "postgresql://app:***@db:5432/prod"
    assert redact_url("redis://:pw@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("sqlite:///maintenance.db") == "sqlite:///maintenance.db"
    assert redact_url(None) is None


def test_settings_never_show_the_secret_key() -> None:
    from maintenance import Settings

    assert "hush" not in repr(Settings(secret_key="hush"))


def test_an_optional_note_may_be_blank_but_not_too_long() -> None:
    from maintenance.domain.validation import validate_note

    assert validate_note(None) is None and validate_note("  ") is None
    assert validate_note(" done early ") == "done early"
    with pytest.raises(ValidationError, match="at most 500"):
        validate_note("x" * 501)
    with pytest.raises(ValidationError, match="must be text"):
        validate_note(5)
