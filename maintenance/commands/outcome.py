"""What a command did: what committed, and how each follow-up effect went."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..fencing import ActivationResult

#: Exit codes of the CLI (docs/cli.md): done / not done or not fully applied.
EXIT_OK, EXIT_FAILURE = 0, 1


@dataclass(frozen=True)
class Effect:
    """One follow-up effect of a committed change (fencing, sessions, requeue, ...)."""

    name: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Outcome:
    """A command's result.

    ``committed``: the change is in the system of record (SQL) at ``version``.
    ``effects``: the follow-ups, each ok or failed with why. ``data``: the action's
    own JSON fields (kept as the API always answered them). ``value``: the action's
    result object for adapters that render more (the panel's message, the CLI).
    """

    action: str
    committed: bool
    version: int | None
    summary: str
    effects: tuple[Effect, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    value: Any = None

    @property
    def complete(self) -> bool:
        """Committed and every follow-up effect succeeded."""
        return self.committed and all(e.ok for e in self.effects)

    @property
    def failed(self) -> tuple[Effect, ...]:
        """The effects that did not succeed."""
        return tuple(e for e in self.effects if not e.ok)

    def exit_code(self) -> int:
        """0 when complete, else 1 (the line says what committed and what failed)."""
        return EXIT_OK if self.complete else EXIT_FAILURE

    def line(self) -> str:
        """One line for a terminal or a flash message."""
        failed = self.failed
        if not failed:
            return self.summary
        return self.summary + " NOT done: " + "; ".join(f"{e.name} ({e.detail})" for e in failed)

    def to_dict(self) -> dict[str, Any]:
        """The action's JSON plus ``committed``, ``complete``, ``effects`` and ``message``."""
        return {
            **self.data,
            "action": self.action,
            "committed": self.committed,
            "complete": self.complete,
            "version": self.version,
            "message": self.line(),
            "effects": {e.name: e.to_dict() for e in self.effects},
        }


def fencing_effect(result: ActivationResult) -> Effect:
    """How the new status reached the live nodes."""
    if result.fenced:
        return Effect("fencing", True, f"{len(result.applied_nodes)} live node(s) applied it")
    if result.propagation == "not-waited":
        return Effect("fencing", True, "published; not waited for")
    if result.propagation == "timeout":
        lagging = ", ".join(str(n.get("node_id")) for n in result.lagging_nodes)
        return Effect("fencing", False, f"not every live node applied it in time: {lagging}")
    error = result.details.get("propagation_error") or result.propagation
    return Effect(
        "fencing",
        False,
        f"Redis unavailable ({error}); nodes pick the change up from SQL on their next poll",
    )
