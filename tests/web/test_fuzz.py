"""Fuzzing every entry point's input: every JSON API endpoint's bodies and queries, every
CLI command's arguments. Whatever comes in: no 5xx, no traceback, only the exit codes of
docs/cli.md (one line on stderr for 2 and 3), nothing raw for a terminal, and the status
version in SQL unchanged after every refused input (400/413/415, exit 2)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from maintenance import EnhancedMaintenanceModeService, Settings
from maintenance.web.api import bodies, control, public
from tests.web.conftest import build_app, login

API = "/api/maintenance"
SAME_ORIGIN = {"Origin": "http://localhost"}
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Texts and numbers that broke entry points before, mixed into the random ones.
NASTY_TEXT = [
    "",
    " ",
    "\x00",
    "\x1b[2J\x1b[31mred",
    "a\r\nb",
    "\u200b\u200c",
    "\ud800",
    "caf\udce9",
    "\u202eabc",
    "٣m",
    "\uff130s",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "-1",
    "0",
    "30",
    "3601",
    "99999999999999999999999",
    "normal",
    "emergency",
    "test",
    "30m",
    "1h30m",
    "now",
    "+30m",
    "9999-12-31T23:59",
    "caption_generation",
    "maintenance_enabled",
    "x" * 600,
]
TEXT = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=30))
NUMBER = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 30, 60, 86400, 86401, 2**63, -1, 1e309, 0.5]),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JSON_VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)


# -- the JSON API --------------------------------------------------------------------------

POSTS: dict[str, bodies.Body] = {
    "/enable": bodies.ENABLE,
    "/disable": bodies.DISABLE,
    "/sessions/invalidate": bodies.INVALIDATE,
    "/login-block": bodies.LOGIN_BLOCK,
    "/bypass-link": bodies.BYPASS_LINK,
    "/emergency": bodies.EMERGENCY,
    "/emergency/deactivate": bodies.EMERGENCY_OFF,
    "/emergency/critical-only": bodies.CRITICAL_ONLY,
}
GETS: dict[str, tuple[str, ...]] = {
    "/status": (),
    "/blocked-operations": (),
    "/message": ("operation",),
    "/openapi.json": (),
    "/history": ("limit", "before_id", "kind", "activation_id"),
    "/sessions": ("sample",),
    "/emergency": (),
}
REFUSED = (400, 413, 415)


def test_the_fuzz_covers_every_api_route() -> None:
    routes = {
        (rule, m) for rule, _e, _v, methods in (*public.ROUTES, *control.ROUTES) for m in methods
    }
    covered = {(p, "POST") for p in POSTS} | {(p, "GET") for p in GETS} | {("/stream", "GET")}
    assert routes == covered  # /stream is a never-ending SSE answer: tests/web/test_stream.py


@st.composite
def post_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    path = draw(st.sampled_from(sorted(POSTS)))
    names = sorted(POSTS[path])
    body: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True)):
        if name == "wait":  # a valid wait stays short: the test is bounded in time
            body[name] = draw(st.one_of(JSON_VALUE, st.floats(0, 0.5)))
        else:
            body[name] = draw(JSON_VALUE)
    if draw(st.booleans()):
        body[draw(TEXT)] = draw(JSON_VALUE)
    raw = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
    kind = draw(st.sampled_from(["json", "json", "json", "deep", "bytes"]))
    if kind == "deep":
        depth = draw(st.integers(1, 20_000))
        raw = b'{"reason": ' + b"[" * depth + b"]" * depth + b"}"
    elif kind == "bytes":
        raw = draw(st.binary(max_size=64))
    return path, raw


@pytest.fixture
def fuzz_app(web_service: EnhancedMaintenanceModeService) -> Flask:
    app = build_app(web_service)
    app.testing = False  # an exception would be a 500 answer, as in production
    return app


@FUZZ
@given(
    case=post_bodies(),
    content_type=st.sampled_from(
        ["application/json"] * 5 + ["text/plain", "application/x-www-form-urlencoded"]
    ),
)
def test_api_writes_never_fail_and_refusals_change_nothing(
    fuzz_app: Flask,
    operator: EnhancedMaintenanceModeService,
    case: tuple[str, bytes],
    content_type: str,
) -> None:
    path, raw = case
    client = login(fuzz_app.test_client(), "root", "admin")
    before = operator.state.load().version
    response = client.post(
        f"{API}{path}", data=raw, headers={**SAME_ORIGIN, "Content-Type": content_type}
    )
    event(f"POST {response.status_code}")
    assert response.status_code < 500, (path, raw[:200], response.get_data(as_text=True)[:300])
    assert response.is_json, (path, response.get_data(as_text=True)[:200])
    if response.status_code in REFUSED:
        assert operator.state.load().version == before, (path, raw[:200])
        assert response.get_json()["error"] in (
            "validation_error",
            "payload_too_large",
            "unsupported_media_type",
        )


@FUZZ
@given(
    path=st.sampled_from(sorted(GETS)),
    query=st.lists(
        st.tuples(
            st.sampled_from(
                ["limit", "before_id", "kind", "activation_id", "sample", "operation", "x"]
            ),
            TEXT,
        ),
        max_size=4,
    ),
)
def test_api_reads_never_fail(fuzz_app: Flask, path: str, query: list[tuple[str, str]]) -> None:
    client = login(fuzz_app.test_client(), "root", "admin")
    safe = [(k, v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")) for k, v in query]
    response = client.get(f"{API}{path}", query_string=safe)
    assert response.status_code < 500, (path, query, response.get_data(as_text=True)[:300])
    assert response.is_json


# -- the CLI -----------------------------------------------------------------------------

#: ``command path -> (flags, options taking a value, positional arguments)``. Left out, to
#: keep the run bounded and on this machine: ``status --watch`` and ``notify deliver
#: --follow`` (run until interrupted), ``drain --wait``, ``-A/--app`` (imports a module by
#: name), ``db upgrade --database-url`` (creates a database where told) and ``demo``.
COMMANDS: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, ...], int]] = {
    ("status",): (("--json",), (), 0),
    ("enable",): (
        ("--json", "--secret"),
        ("--reason", "--duration", "--mode", "--block", "--wait", "--by", "--expect-version"),
        0,
    ),
    ("disable",): (("--json", "--no-requeue"), ("--wait", "--by", "--reason"), 0),
    ("history",): (("--json",), ("--limit", "--kind"), 0),
    ("nodes",): (("--json",), (), 0),
    ("report",): (("--list", "--json"), ("--emergency", "--format"), 1),
    ("rehearsal", "report"): (("--save", "--json"), ("--activation", "--format"), 0),
    ("rehearsal", "reset"): ((), ("--by",), 0),
    ("notify", "status"): (("--json",), (), 0),
    ("notify", "deliver"): (("--json", "--retry-failed"), ("--timeout",), 0),
    ("check",): (("--list", "--no-record", "--json"), ("--only",), 0),
    ("drain",): (("--json",), ("--timeout",), 0),
    ("emergency",): (
        ("--json", "--critical-only", "--off", "--force", "--progress", "--no-requeue"),
        ("--reason", "--grace", "--kill-after", "--duration", "--trigger", "--by"),
        0,
    ),
    ("jobs",): (("--json",), ("--state", "--limit"), 0),
    ("recover",): (("--json",), ("--limit", "--by"), 0),
    ("schedule",): (
        ("--json", "--list"),
        ("--start", "--end", "--reason", "--mode", "--cancel", "--by"),
        0,
    ),
    ("db", "check"): (("--json",), (), 0),
    ("db", "adopt"): (("--json", "--yes"), ("--use", "--by", "--reason", "--wait"), 0),
    ("sessions",): (("--json", "--invalidate"), ("--sample", "--window", "--by", "--wait"), 0),
}


def test_the_fuzz_covers_every_cli_command() -> None:
    import click

    from maintenance.cli import _load_plugins, cli

    _load_plugins()

    def walk(group: click.Group, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from walk(command, (*prefix, name))
            else:
                yield (*prefix, name)

    left_out = {("db", "upgrade"), ("demo",)}  # see COMMANDS
    assert set(walk(cli, ())) == set(COMMANDS) | left_out


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    path = draw(st.sampled_from(sorted(COMMANDS)))
    flags, options, positional = COMMANDS[path]
    argv = list(path)
    for flag in draw(st.lists(st.sampled_from(flags), unique=True)) if flags else []:
        argv.append(flag)
    for option in draw(st.lists(st.sampled_from(options), unique=True)) if options else []:
        argv += [option, draw(TEXT)]
    argv += [draw(TEXT) for _ in range(draw(st.integers(0, positional)))]
    if path == ("db", "adopt") and "--yes" not in argv:
        argv.append("--yes")  # a confirmation prompt would read the test's stdin
    if path == ("emergency",):
        argv += ["--no-wait"] if "--off" not in argv else ["--no-requeue"]
        if "--wait" in argv:
            argv.remove("--wait")
    return argv


@pytest.fixture
def cli_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in {
        "REDIS_URL": settings.redis_url or "",
        "MAINTENANCE_DATABASE_URL": settings.database_url,
        "MAINTENANCE_REDIS_PREFIX": settings.redis_prefix,
        "MAINTENANCE_ACTOR": "fuzzer",
        "MAINTENANCE_ENABLE_WAIT": "0.2",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MAINTENANCE_WEBHOOK_URLS", raising=False)
    return settings


def run_main(argv: list[str]) -> tuple[int, str, str]:
    from maintenance.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code
    return (code if isinstance(code, int) else 1), out.getvalue(), err.getvalue()


@FUZZ
@given(argv=command_lines())
def test_cli_commands_exit_as_documented_and_refusals_change_nothing(
    cli_settings: Settings, operator: EnhancedMaintenanceModeService, argv: list[str]
) -> None:
    before = operator.state.load().version
    code, out, err = run_main(argv)
    event(f"{argv[0]} exit {code}")
    assert code in (0, 1, 2, 3), (argv, code, err)
    assert "Traceback" not in out + err, (argv, err)
    assert "\x1b" not in out + err, argv
    if code in (2, 3):
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("maintenance: error: "), (argv, err)
    if code == 2:
        assert operator.state.load().version == before, argv
