"""Telling the scenario: headings, one line per observation (✓/✗), commands, a summary table."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

OK, FAIL, SKIP = "\u2713", "\u2717", "-"


class StepFailed(Exception):
    """A step cannot go on (the fleet is not in the state the next observation needs)."""


@dataclass
class Step:
    """One step of the walkthrough: what should happen and what did."""

    title: str
    expected: str
    observed: str = ""
    checks: list[bool] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every observation as expected (a skipped step is not ok)."""
        return (
            self.skipped is None and self.error is None and bool(self.checks) and all(self.checks)
        )

    @property
    def verdict(self) -> str:
        """The summary table's last column."""
        if self.skipped is not None:
            return "skipped"
        return "yes" if self.ok else "NO"


class Narrator:
    """Prints the story as it happens and keeps the record for the summary."""

    def __init__(self, out: TextIO | None = None, width: int = 100) -> None:
        self.out = out or sys.stdout
        self.width = width
        self.steps: list[Step] = []
        self.current: Step | None = None
        #: Set by the runner's Ctrl-C/SIGTERM handler. Its KeyboardInterrupt can be swallowed
        #: where Python ignores exceptions (a finaliser, a callback), so every observation
        #: also asks, and the walkthrough stops at the next one.
        self.stop_requested = False

    def stop_if_requested(self) -> None:
        """Raise KeyboardInterrupt if a stop was asked for and not yet handled."""
        if self.stop_requested:
            raise KeyboardInterrupt

    # -- printing ------------------------------------------------------------------
    def say(self, text: str = "", indent: int = 2, hang: int | None = None) -> None:
        """Plain narration, wrapped (leading newlines become blank lines); ``hang``
        indents the continuation lines."""
        stripped = text.lstrip("\n")
        for _ in range(len(text) - len(stripped)):
            print(file=self.out)
        text = stripped
        if not text:
            print(file=self.out, flush=True)
            return
        pad = " " * indent
        rest = " " * (indent if hang is None else hang)
        print(
            textwrap.fill(text, self.width, initial_indent=pad, subsequent_indent=rest),
            file=self.out,
            flush=True,
        )

    def check(self, ok: bool, text: str) -> bool:
        """One observation: ✓ or ✗ and a line of plain words; recorded in the current step."""
        self.stop_if_requested()
        if self.current is not None:
            self.current.checks.append(bool(ok))
        print(f"  {OK if ok else FAIL} {text}", file=self.out, flush=True)
        return bool(ok)

    def require(self, ok: bool, text: str) -> None:
        """An observation the rest of the step depends on: ✗ ends the step."""
        if not self.check(ok, text):
            raise StepFailed(text)

    def command(self, shown: str, output: str, code: int) -> None:
        """An operator's command and what it printed, indented under it."""
        self.stop_if_requested()
        print(f"  $ {shown}", file=self.out)
        for line in output.rstrip().splitlines():
            print(f"  \u2502 {line}", file=self.out)
        if code:
            print(f"  \u2502 (exit status {code})", file=self.out)
        self.out.flush()

    # -- steps -----------------------------------------------------------------------
    @contextmanager
    def step(self, title: str, expected: str, intro: str = "") -> Iterator[Step]:
        """A heading, the step's narration and checks; an exception fails the step."""
        self.stop_if_requested()
        step = Step(title, expected)
        self.steps.append(step)
        self.current = step
        number = len(self.steps)
        print(f"\n{number}. {title}", file=self.out)
        print("   " + "\u2500" * (len(title) + 1), file=self.out, flush=True)
        if intro:
            self.say(intro)
        started = time.monotonic()
        try:
            yield step
        except KeyboardInterrupt:
            step.error = "interrupted"
            raise
        except StepFailed as exc:
            step.error = str(exc)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            step.error = textwrap.shorten(f"{type(exc).__name__}: {first}", 160)
            print(f"  {FAIL} {step.error}", file=self.out, flush=True)
        finally:
            step.seconds = time.monotonic() - started
            self.current = None
        if not step.observed:
            step.observed = step.error or step.skipped or ""

    def skip(self, title: str, expected: str, why: str) -> Step:
        """A step that could not run here; it counts as not ok."""
        step = Step(title, expected, observed=f"skipped: {why}", skipped=why)
        self.steps.append(step)
        print(f"\n{len(self.steps)}. {title}", file=self.out)
        print("   " + "\u2500" * (len(title) + 1), file=self.out)
        print(f"  {SKIP} skipped: {why}", file=self.out, flush=True)
        return step

    # -- the end -----------------------------------------------------------------------
    @property
    def all_ok(self) -> bool:
        """Whether every step behaved."""
        return bool(self.steps) and all(s.ok for s in self.steps)

    def summary(self) -> str:
        """The table of every step: step, expected, observed, ok."""
        headers = ("step", "expected", "observed", "ok")
        rows = [
            (f"{i}. {s.title}", s.expected, s.observed, s.verdict)
            for i, s in enumerate(self.steps, 1)
        ]
        limits = (23, 30, 36, 7)
        cells = [[_wrap(c, w) for c, w in zip(row, limits, strict=True)] for row in rows]
        widths = [
            max([len(headers[i])] + [len(line) for cell in cells for line in cell[i]])
            for i in range(4)
        ]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        lines = [rule, _row([[h] for h in headers], widths), rule.replace("-", "=")]
        for row_cells in cells:
            lines.append(_row(row_cells, widths))
            lines.append(rule)
        return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width) or [""]


def _row(cells: list[list[str]], widths: list[int]) -> str:
    height = max(len(c) for c in cells)
    out = []
    for n in range(height):
        parts = [(c[n] if n < len(c) else "").ljust(w) for c, w in zip(cells, widths, strict=True)]
        out.append("| " + " | ".join(parts) + " |")
    return "\n".join(out)
