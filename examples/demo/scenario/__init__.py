"""``maintenance demo --scenario``: a narrated walkthrough of maintenance, end to end."""

from .runner import run_scenario

__all__ = ["run_scenario"]
