"""Human-readable renderings of status, results and history for the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TextIO, TypeVar

from ..commands.outcome import Outcome
from ..domain.history import MaintenanceEvent
from ..domain.status import MaintenanceStatus, utcnow
from ..fencing import ActivationResult
from ..nodes import NodeInfo

T = TypeVar("T")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: object) -> str:
    """``text`` (stored, so anyone's) as it may reach a terminal: every character a
    terminal could act on or hide (ESC and other controls, CR/LF, bidirectional and
    zero-width format characters, lone surrogates) written as a visible ``\\x1b``-style
    escape. Ordinary letters of any script pass unchanged."""
    value = "" if text is None else str(text)
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in value)


def terminal_lines(text: str) -> str:
    """``terminal_safe`` for each line of a rendering, keeping its line breaks."""
    return "\n".join(terminal_safe(line) for line in text.split("\n"))


def render_table(
    items: Sequence[T], empty: str, header: str | None, row: Callable[[T], str]
) -> str:
    """One line per item under ``header`` (if any); ``empty`` when there are none."""
    if not items:
        return empty
    rows = [] if header is None else [header]
    rows.extend(row(item) for item in items)
    return "\n".join(rows)


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = int((now - when).total_seconds())
    span = f"{abs(seconds) // 60} min" if abs(seconds) >= 60 else f"{abs(seconds)} s"
    return f"{when:%Y-%m-%d %H:%M:%S} UTC ({span} {'ago' if seconds >= 0 else 'from now'})"


def render_status(status: MaintenanceStatus, nodes: dict[str, NodeInfo] | None = None) -> str:
    """A few aligned lines an operator can read at a glance."""
    now = utcnow()
    lines = []
    if status.is_active:
        state = f"ACTIVE ({status.mode.value}{', rehearsal' if status.test_mode else ''})"
    else:
        state = "off"
    lines.append(f"Maintenance:   {state}   version {status.version}")
    if status.is_active:
        lines.append(f"Reason:        {terminal_safe(status.reason)}")
        lines.append(
            f"Enabled by:    {terminal_safe(status.enabled_by)}, {_ago(status.started_at, now)}"
        )
        end = _ago(status.estimated_completion, now) if status.estimated_completion else "unknown"
        lines.append(f"Expected end:  {end}{'  OVERDUE' if status.overdue else ''}")
        label = "Would block: " if status.test_mode else "Blocked:     "
        lines.append(f"{label}  {', '.join(op.value for op in status.blocked_operations)}")
        if status.emergency_phase:
            lines.append(f"Emergency:     phase {terminal_safe(status.emergency_phase)}")
        flags = [
            name
            for name, on in (
                ("non-admin login refused", status.login_blocked),
                ("critical admins only", status.critical_admin_only),
            )
            if on
        ]
        if flags:
            lines.append(f"Access:        {'; '.join(flags)}")
    lines.append(
        f"Jobs:          {status.active_jobs_count} running, {status.deferred_jobs_count} deferred"
        + (
            f", {status.jobs_needing_action_count} stopped and NOT safe to rerun (need action)"
            if status.jobs_needing_action_count
            else ""
        )
    )
    if status.is_active:
        lines.append(f"Sessions:      {status.invalidated_sessions} invalidated")
        blocked = status.extra.get("blocked_attempts") or {}
        if blocked:
            counts = ", ".join(f"{terminal_safe(op)} {n}" for op, n in sorted(blocked.items()))
            lines.append(f"Blocked tries: {counts}")
    if nodes is not None:
        behind = [n for n in nodes.values() if n.applied_version < status.version]
        detail = "all current" if not behind else f"{len(behind)} behind"
        lines.append(f"Nodes:         {len(nodes)} live, {detail}")
    health = f"DEGRADED: {terminal_safe(status.degraded_reason)}" if status.degraded else "ok"
    lines.append(f"Health:        {health}")
    return "\n".join(lines)


def render_result(action: str, result: ActivationResult) -> str:
    """One paragraph on what enable/disable achieved."""
    status = result.status
    head = f"Maintenance {action} (version {status.version})."
    if result.propagation == "fenced":
        tail = (
            f"All {len(result.applied_nodes)} live node(s) applied it in "
            f"{result.waited_seconds * 1000:.1f} ms."
        )
    elif result.propagation == "timeout":
        lag = ", ".join(terminal_safe(n["node_id"]) for n in result.lagging_nodes)
        tail = f"Timed out waiting for {len(result.lagging_nodes)} node(s): {lag}"
    elif result.propagation == "redis-unavailable":
        tail = "Redis is unavailable: nodes will pick the change up from SQL on their next poll."
    else:
        tail = "Published (not waiting for nodes)."
    return f"{head} {tail}"


def render_outcome(action: str, outcome: Outcome) -> str:
    """One line: what committed and propagated (``render_result``), the sessions logged
    out, and every other follow-up effect that failed."""
    parts = [render_result(action, outcome.value)]
    sessions = outcome.data.get("sessions")
    if sessions is not None:
        parts.append(f"{sessions['count']} non-admin session(s) logged out.")
    parts += [f"NOT done: {e.name}: {e.detail}." for e in outcome.failed if e.name != "fencing"]
    return terminal_safe(" ".join(parts))


def render_history(events: list[MaintenanceEvent]) -> str:
    """One line per event, newest first."""

    def row(event: MaintenanceEvent) -> str:
        who = terminal_safe(event.actor or "-")
        why = f" - {terminal_safe(event.reason)}" if event.reason else ""
        return f"{event.at:%Y-%m-%d %H:%M:%S}  {terminal_safe(event.kind):<24} {who}{why}"

    return render_table(events, "No maintenance events recorded.", None, row)


def render_nodes(nodes: dict[str, NodeInfo], version: int) -> str:
    """Live nodes and the version each applied."""

    def row(node: NodeInfo) -> str:
        mark = "" if node.applied_version >= version else "  (behind)"
        name, kind = terminal_safe(node.node_id), terminal_safe(node.kind)
        held = node.info.get("held_queues") or []
        if held:  # a worker holding queues in the broker (MAINTENANCE_HOLD_QUEUES)
            mark += "  holding " + terminal_safe(", ".join(str(q) for q in held))
        return f"{name:<48} {kind:<8} {node.applied_version}{mark}"

    return render_table(
        sorted(nodes.values(), key=lambda n: n.node_id),
        "No live nodes.",
        f"{'node':<48} {'kind':<8} applied",
        row,
    )


def jsonable_events(events: list[MaintenanceEvent]) -> list[dict[str, Any]]:
    """Events as JSON-ready dicts."""
    return [event.to_dict() for event in events]


class LiveLine:
    """One status line for a long wait: on a terminal it is rewritten in place (``\\r``
    and erase-line), so the screen shows the latest state only; piped or redirected it
    prints a plain line each time the text changes -- no control characters in a log."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty()
        self.last: str | None = None
        self.open = False  # a line was written in place and not ended yet

    def show(self, text: str) -> None:
        """Show ``text`` (made terminal-safe) as the current state."""
        text = terminal_safe(text)
        if text == self.last:
            return
        self.last = text
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
            self.open = True
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()

    def end(self) -> None:
        """Leave the last state on screen and move to a new line (a terminal only)."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False
