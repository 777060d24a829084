"""Every event kind the code records is one ``history --kind`` and ``GET /history?kind=``
accept (``maintenance.domain.history.EVENT_KINDS``). Read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

from maintenance.domain.history import EVENT_KINDS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("maintenance", "workers", "signals")


def _recorded_kinds() -> dict[str, str]:
    """Literal kinds passed to ``record_event``/``update_status``/``MaintenanceEvent`` and
    ``EVENT_KIND = "..."`` constants, each with where it was found."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                named = isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "EVENT_KIND" for t in node.targets
                )
                if named and isinstance(node.value, ast.Constant):  # type: ignore[attr-defined]
                    found[str(node.value.value)] = where  # type: ignore[attr-defined]
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                args: list[ast.expr] = []
                if name == "record_event":
                    args = node.args[:1]
                elif name == "update_status":
                    args = node.args[1:2]
                args += [k.value for k in node.keywords if k.arg in ("kind", "event_kind")]
                if name not in ("record_event", "update_status", "MaintenanceEvent"):
                    continue
                for arg in args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found[arg.value] = where
                    elif isinstance(arg, ast.IfExp):
                        for branch in (arg.body, arg.orelse):
                            if isinstance(branch, ast.Constant):
                                found[str(branch.value)] = where
    return found


def test_every_recorded_kind_is_a_known_kind() -> None:
    found = _recorded_kinds()
    assert len(found) > 15  # the scan works
    unknown = {kind: where for kind, where in found.items() if kind not in EVENT_KINDS}
    assert unknown == {}
