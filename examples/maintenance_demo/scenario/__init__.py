"""``maintenance demo --scenario``: a narrated walkthrough of maintenance, end to end."""

from .runner import MIN_TASK_SECONDS, run_scenario

__all__ = ["MIN_TASK_SECONDS", "run_scenario"]
