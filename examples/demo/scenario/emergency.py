"""The scenario's second half: an emergency with grace and termination, recovery, report."""

from __future__ import annotations

from .context import Stage

STEPS: tuple[Stage, ...] = ()


def unavailable() -> str | None:
    """Why the emergency half cannot run here (None: it can)."""
    return "emergency support not installed"
