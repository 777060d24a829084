"""What the steps of the scenario share: the fleet, the people, the jobs started so far."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .fleet import ScenarioFleet
from .narrator import Narrator, Step, StepFailed
from .operator import Operator
from .web import Person

T = TypeVar("T")


@dataclass
class Scenario:
    """The run's state, handed from step to step."""

    narrator: Narrator
    fleet: ScenarioFleet
    task_seconds: float
    operator: Operator | None = None
    alice: Person | None = None
    admin: Person | None = None
    images: list[int] = field(default_factory=list)
    #: job ids by role in the story ("running", "held", "admin", ...).
    jobs: dict[str, list[int]] = field(default_factory=dict)
    activation_id: str | None = None
    emergency_id: str | None = None

    def user(self) -> Person:
        """Alice, logged in at the start."""
        if self.alice is None:
            raise StepFailed("alice never logged in (an earlier step failed)")
        return self.alice

    def job_states(self, role: str, person: Person | None = None) -> list[dict[str, Any]]:
        """The jobs of ``role`` as the app shows them (read as the admin when logged in)."""
        who = person or self.admin or self.user()
        return [who.job(job_id) for job_id in self.jobs.get(role, [])]


@dataclass(frozen=True)
class Stage:
    """One step of the story: its heading, what should happen, and the code that shows it."""

    title: str
    expected: str
    body: Callable[[Scenario, Step], None]

    def __call__(self, sc: Scenario) -> Step:
        """Run the body under its heading; the step records what was observed."""
        with sc.narrator.step(self.title, self.expected) as step:
            self.body(sc, step)
        return step


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``predicate`` until it is truthy; ``StepFailed`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise StepFailed(f"waited {timeout:g} s for {what}")
        time.sleep(interval)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 job``, ``3 jobs``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
