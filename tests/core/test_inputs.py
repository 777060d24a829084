"""Bad input on every way in: text with control characters, lone surrogates and invalid
UTF-8, numbers that are not finite or out of range, one grammar of digits, and stored
text that reaches a terminal only escaped."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from maintenance import EnhancedMaintenanceModeService
from maintenance.domain.enable_request import EnableRequest
from maintenance.domain.history import MaintenanceEvent
from maintenance.domain.validation import (
    MAX_JSON_DEPTH,
    check_json_tree,
    clean_text,
    exact_duration,
    json_depth,
    parse_duration,
    validate_actor,
    validate_note,
    validate_reason,
    validate_wait,
)
from maintenance.errors import ValidationError
from tests.core.cli import run_cli

ESC = "\x1b[31mRED\x1b[0m"
CLI: list[str | bytes] = [sys.executable, "-c", "from maintenance.cli import main; main()"]


@pytest.mark.parametrize(
    "text",
    ["a\x00b", "a\x1bb", ESC, "x\x7f", "x\x9b", "abc\u202edcba", "\ud800", "ok\udcff"],
)
def test_control_characters_bidi_controls_and_lone_surrogates_are_refused(text: str) -> None:
    for check in (validate_reason, validate_note, validate_actor):
        with pytest.raises(ValidationError):
            check(text)


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\ufeff", " \u2060 ", "\t\r\n"])
def test_zero_width_only_text_is_blank(text: str) -> None:
    with pytest.raises(ValidationError, match="reason is required"):
        validate_reason(text)
    assert validate_note(text) is None


def test_line_breaks_and_tabs_become_one_space() -> None:
    assert validate_reason(" db\r\nupgrade\tnow\u2028ok ") == "db upgrade now ok"
    assert clean_text("emoji \U0001f468\u200d\U0001f469 ok", "x", maximum=50, required=True)


@pytest.mark.parametrize("value", ["٣m", "\uff130s", "1h٣0m", "٣"])
def test_non_ascii_digits_are_refused_in_both_grammars(value: str) -> None:
    with pytest.raises(ValidationError):
        parse_duration(value)
    with pytest.raises(ValidationError):
        exact_duration(value)


@pytest.mark.parametrize("wait", [math.nan, math.inf, -math.inf, 1e309, -1, 3601, 10**30])
def test_waits_are_finite_and_in_range(wait: float) -> None:
    with pytest.raises(ValidationError):
        validate_wait(wait)
    with pytest.raises(ValidationError):
        EnableRequest.validate("x", enabled_by="ops", wait=wait)


@pytest.mark.parametrize("duration", [math.nan, math.inf, 0.4, 10**400])
def test_durations_are_finite_and_whole(duration: float) -> None:
    with pytest.raises(ValidationError):
        parse_duration(duration)


@pytest.mark.parametrize("version", [-1, 2**63, True, "3"])
def test_expected_version_is_checked_in_both_grammars(version: object) -> None:
    with pytest.raises(ValidationError) as refused:
        EnableRequest.validate("x", enabled_by="ops", expected_version=version)  # type: ignore[arg-type]
    assert refused.value.field == "expected_version"


def test_json_trees_are_bounded() -> None:
    assert json_depth('{"a": ["[[[{{", {"b": "\\"]"}]}') == 3
    assert json_depth("[" * 10_000 + "]" * 10_000) == 10_000
    deep: object = "x"
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    with pytest.raises(ValidationError, match="nested deeper"):
        check_json_tree({"a": deep})
    for bad in (
        {"wait": math.nan},
        {"wait": math.inf},
        {"n": 2**64},
        {"\ud800": 1},
        {"r": "\udc00"},
    ):
        with pytest.raises(ValidationError):
            check_json_tree(bad)
    check_json_tree({"reason": "ok", "blocked_operations": ["a"], "wait": 1.5, "n": 2**62})


# -- the CLI -----------------------------------------------------------------------------


def _version(env: dict[str, str]) -> int:
    return int(json.loads(run_cli(env, "status", "--json").stdout)["version"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enable", "--reason", "x", "--wait", "1e309"], "Invalid value for '--wait'"),
        (["enable", "--reason", "x", "--wait", "nan"], "Invalid value for '--wait'"),
        (["enable", "--reason", "x", "--wait", "inf"], "Invalid value for '--wait'"),
        (["enable", "--reason", "x", "--wait", "-1"], "'-1'"),
        (["enable", "--reason", "x", "--duration", "٣m"], "is not a duration"),
        (["enable", "--reason", "x", "--expect-version", "-1"], "--expect-version"),
        (["enable", "--reason", "x\x1b[2J"], "control character U+001B"),
        (["enable", "--reason", "\u200b\u200b"], "reason is required"),
        (["enable", "--reason", "x", "--by", "a\x07b"], "--by"),
        (["disable", "--wait", "nan"], "Invalid value for '--wait'"),
        (["history", "--kind", "nope"], "unknown event kind 'nope'"),
        (["history", "--limit", "٣"], "Invalid value for '--limit'"),
        (["sessions", "--wait", "1e309"], "Invalid value for '--wait'"),
        (["drain", "--timeout", "nan"], "Invalid value for '--timeout'"),
        (["schedule", "--cancel", "99999999999999999999999"], "Invalid value for '--cancel'"),
        (
            ["schedule", "--start", "9999-12-31T23:00", "--end", "+7d", "--reason", "x"],
            "out of range",
        ),
    ],
)
def test_cli_refuses_bad_numbers_and_text_with_exit_2_and_changes_nothing(
    cli_env: dict[str, str],
    args: list[str],
    message: str,
) -> None:
    done = run_cli(cli_env, *args)
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "\x1b" not in done.stderr
    assert _version(cli_env) == 0


def test_cli_refuses_invalid_utf8_with_one_line(cli_env: dict[str, str]) -> None:
    done = subprocess.run(
        [*CLI, "enable", "--reason", b"caf\xe9 \xff"],
        capture_output=True,
        env=cli_env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.decode().strip().splitlines()
    assert lines == ["maintenance: error: argument 3 is not valid UTF-8"]
    assert _version(cli_env) == 0


def test_stored_text_reaches_the_terminal_escaped(
    cli_env: dict[str, str],
    make_service,  # type: ignore[no-untyped-def]
) -> None:
    # Text stored before these rules (or written by something else) is still escaped.
    service: EnhancedMaintenanceModeService = make_service(kind="cli", register=False)
    service.enable_maintenance("placeholder", enabled_by="ops")
    current = service.state.load()
    raw = current.with_changes(reason=f"{ESC}\r\nfake line", enabled_by="ev\x1bil")
    stored = service.state.compare_and_set(
        current.version, raw, MaintenanceEvent(kind="maintenance_updated", reason=ESC)
    )
    service._propagate(stored, 0)  # published as an old node would have
    service.record_event("rehearsal_reset", actor="a\x07b", reason="x\x1b]0;title\x07")
    for args in (["status"], ["history"]):
        done = run_cli(cli_env, *args)
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout and "\r" not in done.stdout
        assert "\\x1b[31mRED" in done.stdout
    assert "fake line" not in [
        line.strip() for line in run_cli(cli_env, "status").stdout.split("\n")
    ]
