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


def test_the_api_duration_grammar_is_drawn_from_the_limit() -> None:
    """One number and unit, every count from 1 up to the limit and none above (no leading
    zeros, no compounds): the pattern is built from ``MAX_DURATION``, not written out."""
    import re

    from maintenance.domain.validation import (
        DURATION_UNITS,
        EXACT_DURATION_PATTERN,
        EXACT_DURATION_UNITS,
        MAX_DURATION,
        exact_duration,
    )

    pattern = re.compile(EXACT_DURATION_PATTERN)
    for unit in EXACT_DURATION_UNITS:
        top = MAX_DURATION // DURATION_UNITS[unit]
        counts = {*range(0, min(top, 3000) + 2), top - 1, top, top + 1, top * 10}
        for count in counts:
            assert bool(pattern.fullmatch(f"{count}{unit}")) is (1 <= count <= top), (count, unit)
        assert exact_duration(f" {top}{unit} ") == top * DURATION_UNITS[unit]
    for text in ("01m", "1h30m", "1.5h", "1w", "90", ""):
        assert not pattern.fullmatch(text), text
        with pytest.raises(ValidationError, match="one number and unit"):
            exact_duration(text)


def test_one_enable_model_reads_the_operators_and_the_apis_grammar() -> None:
    """The same request from typed input and from exact JSON; what only operators may type
    is refused by the API with the field named."""
    from maintenance.domain.enable_request import EnableRequest

    typed = EnableRequest.validate(
        " upgrade ", "1h30m", "NORMAL", "alice", "caption_generation, image-processing", wait=45
    )
    assert (typed.reason, typed.seconds, typed.mode, typed.wait) == (
        "upgrade",
        5400,
        MaintenanceMode.NORMAL,
        45.0,
    )
    assert typed.blocked == (OperationType.CAPTION_GENERATION, OperationType.IMAGE_PROCESSING)
    exact = EnableRequest.from_json(
        {
            "reason": "upgrade",
            "duration": 5400,
            "mode": "normal",
            "blocked_operations": ["caption_generation", "image_processing"],
            "wait": 5,
        },
        "alice",
    )
    assert (exact.seconds, exact.blocked, exact.wait) == (5400, typed.blocked, 5.0)
    for field, value in (
        ("duration", "1h30m"),
        ("mode", "NORMAL"),
        ("blocked_operations", ["image-processing"]),
        ("blocked_operations", ["status_check"]),
        ("wait", 45),
        ("expected_version", -1),
    ):
        with pytest.raises(ValidationError) as refused:
            EnableRequest.from_json({"reason": "x", field: value}, "alice")
        assert refused.value.field == field, (field, value)
    with pytest.raises(ValidationError, match="longer than 500"):
        EnableRequest.from_json({"reason": "x" * 500 + " "}, "alice")  # counted as sent
    with pytest.raises(ValidationError, match=r"wait must be 0\.\.3600"):
        EnableRequest.validate("x", enabled_by="alice", wait=-1)


def test_the_model_reports_every_field_at_once_for_forms() -> None:
    from maintenance.domain.enable_request import EnableRequest

    req, errors = EnableRequest.check(
        {"reason": " ", "duration": "8d", "mode": "panic", "blocked_operations": ["warp"]}, ""
    )
    assert req is None
    assert set(errors) == {"reason", "duration", "mode", "blocked_operations", "enabled_by"}
    req, errors = EnableRequest.check({"reason": "ok", "mode": "test"}, "alice")
    assert errors == {} and req is not None
    assert req.login_blocked is False  # a rehearsal never blocks logins
    assert req.with_defaults(block_login=False).block_login is False
