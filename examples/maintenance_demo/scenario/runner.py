"""Run the walkthrough step by step, stop every process it started, print the summary."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import TextIO

from maintenance import Settings

from ..launcher import DemoOptions
from .context import Scenario
from .emergency import STEPS as EMERGENCY_STEPS
from .emergency import unavailable as emergency_unavailable
from .fleet import ScenarioFleet
from .narrator import Narrator, Step
from .normal import STEPS as NORMAL_STEPS

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
#: Shorter jobs could end on their own before the emergency's SIGTERM reaches them.
MIN_TASK_SECONDS = 3.0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def run_scenario(options: DemoOptions, settings: Settings, out: TextIO | None = None) -> int:
    """The narrated walkthrough: 0 only if every step behaved (1 otherwise, 130 if stopped)."""
    narrator = Narrator(out)
    run_dir = Path(settings.data_dir).absolute() / "scenario" / time.strftime("%Y%m%d-%H%M%S")
    fleet = ScenarioFleet(options, settings, run_dir)
    scenario = Scenario(narrator, fleet, options.task_seconds)
    missing = emergency_unavailable()
    started = time.monotonic()
    narrator.say(
        "Maintenance mode, end to end: a captioning app (Flask web app + Celery workers) is "
        "taken into normal maintenance and back, then into an emergency and back. Each line "
        "says what was observed: \u2713 as expected, \u2717 not.",
        indent=0,
    )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        narrator.stop_requested = True
        raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    previous = signal.signal(signal.SIGTERM, on_signal)
    previous_int = signal.signal(signal.SIGINT, on_signal)
    interrupted = False
    stages = NORMAL_STEPS if missing else (*NORMAL_STEPS, *EMERGENCY_STEPS)
    outline = [(s.title, s.expected) for s in (*NORMAL_STEPS, *EMERGENCY_STEPS)]
    try:
        for stage in stages:
            if stage(scenario).error:
                break  # what follows needs the state this step did not reach
        else:
            for title, expected in outline[len(stages) :]:
                narrator.skip(title, expected, missing or "")
        narrator.stop_if_requested()
    except KeyboardInterrupt:
        interrupted = True
        narrator.stop_requested = False
        narrator.say("\nInterrupted.", indent=0)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        narrator.say("\nStopping every process the scenario started...", indent=0)
        try:
            fleet.stop()
        except Exception as exc:  # the summary must still be printed
            narrator.say(f"Stopping went wrong ({exc}); see {fleet.run_dir}", indent=0)
        else:
            narrator.say("Stopped: no process of the scenario is left running.", indent=0)
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous)
    why = "interrupted" if interrupted else "not run: an earlier step failed"
    for title, expected in outline[len(narrator.steps) :]:
        narrator.steps.append(Step(title, expected, observed=why, skipped=why))
    return _finish(scenario, time.monotonic() - started, interrupted)


def _finish(scenario: Scenario, seconds: float, interrupted: bool) -> int:
    narrator, fleet = scenario.narrator, scenario.fleet
    narrator.say(f"\nSummary ({seconds:.0f} s):", indent=0)
    print(narrator.summary(), file=narrator.out)
    ok = narrator.all_ok and not interrupted
    if ok:
        fleet.remove_databases()
        narrator.say("\nEvery step behaved.", indent=0)
    else:
        failed = [s.title for s in narrator.steps if not s.ok]
        narrator.say(f"\nNot every step behaved: {', '.join(failed)}.", indent=0)
        narrator.say(f"Databases and logs of this run: {fleet.run_dir}", indent=0)
    narrator.out.flush()
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if ok else EXIT_FAILED
