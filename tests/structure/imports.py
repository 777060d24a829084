"""The import graph of the installed packages, read from the source (no imports run)."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "maintenance": ROOT / "maintenance",
    "signals": ROOT / "signals",
    "workers": ROOT / "workers",
}


@dataclass(frozen=True)
class Import:
    """``module`` imports ``target`` at ``line``."""

    module: str
    target: str
    line: int


@functools.cache
def modules() -> tuple[tuple[str, Path], ...]:
    """Every module of the installed packages with its dotted name."""
    return tuple(_walk())


def _walk() -> Iterator[tuple[str, Path]]:
    for name, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = [name, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(module: str, path: Path) -> list[Import]:
    """Absolute targets of every import in ``path`` (also inside functions), except
    those under ``if TYPE_CHECKING:`` which never run."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(Import(module, target, node.lineno))
            # ``from pkg import submodule`` imports the submodule too.
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in _names():
                    found.append(Import(module, sub, node.lineno))
    return found


@functools.cache
def _names() -> frozenset[str]:
    return frozenset(name for name, _ in modules())


def all_imports() -> list[Import]:
    """Every import edge of the installed packages."""
    return [edge for module, path in modules() for edge in imports_of(module, path)]
