"""Click parameter types for numbers, with the limits of ``domain.validation``: a
refused value is a usage error (exit 2, one line) before any command runs."""

from __future__ import annotations

import re
from typing import Any

import click

from ..domain.validation import (
    MAX_INT,
    MAX_OPERATOR_WAIT,
    validate_actor,
    validate_count,
    validate_seconds,
)
from ..errors import ValidationError

_NUMBER = re.compile(r"\+?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


class Seconds(click.ParamType):
    """A finite number of seconds ``0..maximum`` (``nan``, ``inf``, ``1e309`` refused)."""

    name = "seconds"

    def __init__(self, maximum: float = MAX_OPERATOR_WAIT) -> None:
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float):
            number: object = value
        elif _NUMBER.fullmatch(str(value).strip()):
            number = float(str(value).strip())
        else:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        try:
            return validate_seconds(number, field="seconds", maximum=self.maximum)
        except ValidationError:
            self.fail(f"{value!r} is not 0..{self.maximum:g} seconds", param, ctx)


class Count(click.ParamType):
    """A whole number ``low..high`` (ASCII digits; at most a 64-bit SQL integer)."""

    name = "integer"

    def __init__(self, low: int = 0, high: int = MAX_INT) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip()
        body = text[1:] if text[:1] in "+-" else text
        if not (body.isascii() and body.isdigit() and len(body) <= 19):
            self.fail(f"{value!r} is not a whole number {self.low}..{self.high}", param, ctx)
        try:
            return validate_count(int(text), field="value", low=self.low, high=self.high)
        except ValidationError:
            self.fail(f"{value!r} is not a whole number {self.low}..{self.high}", param, ctx)


#: ``--wait`` of the commands that change the state.
WAIT = Seconds(MAX_OPERATOR_WAIT)


class Actor(click.ParamType):
    """``--by NAME``: a name as ``validate_actor`` takes it (one line, no control characters)."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return validate_actor(value, "--by")
        except ValidationError as exc:
            self.fail(str(exc), param, ctx)


ACTOR = Actor()
