"""``flask maintenance routes``: how each route (and Celery task) of the app is classified,
and by which rule, for review before a window."""

from __future__ import annotations

import importlib
from typing import Any

import click
from flask import Flask

from ..cli.context import CliContext, json_option, pass_ctx
from ..domain.classifier import MaintenanceOperationClassifier, Rule
from ..errors import ValidationError

_SKIPPED_METHODS = frozenset({"HEAD", "OPTIONS"})
#: The per-task option naming an operation type (``@app.task(operation_type=...)``).
TASK_OPTION = "operation_type"


def _why(rule: Rule | None, fallback: str) -> str:
    if rule is None:
        return fallback
    methods = f" [{','.join(sorted(rule.methods))}]" if rule.methods else ""
    return f"{rule.target} rule {rule.pattern}{methods}"


def route_rows(app: Flask, classifier: MaintenanceOperationClassifier) -> list[dict[str, Any]]:
    """One row per route and method: rule, endpoint, operation and why."""
    rows = []
    for url_rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        for method in sorted((url_rule.methods or set()) - _SKIPPED_METHODS):
            op, rule = classifier.explain(url_rule.endpoint, method, url_rule.rule)
            safe = method in ("GET", "TRACE")
            rows.append(
                {
                    "method": method,
                    "rule": url_rule.rule,
                    "endpoint": url_rule.endpoint,
                    "operation": op.value,
                    "why": _why(rule, "safe method" if safe else "unclassified mutating"),
                }
            )
    return rows


def task_rows(celery: Any, classifier: MaintenanceOperationClassifier) -> list[dict[str, Any]]:
    """One row per registered task: operation and why (task option, rule, default)."""
    rows = []
    for name in sorted(celery.tasks.keys()):
        declared = getattr(celery.tasks[name], TASK_OPTION, None)
        if declared:
            try:
                op = classifier.operations.parse(declared)
            except ValueError as exc:
                raise ValidationError(f"task {name}: {exc}", field="operation_type") from None
            rows.append({"task": name, "operation": op.value, "why": "task option"})
            continue
        op, rule = classifier.explain_task(name)
        rows.append({"task": name, "operation": op.value, "why": _why(rule, "no rule")})
    return rows


def _load(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    try:
        found = importlib.import_module(module)
        return getattr(found, attr or "celery")
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {spec!r}: {exc}", param_hint="--celery") from None


def _render(routes: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> str:
    lines = []
    width = max((len(r["rule"]) for r in routes), default=10)
    for r in routes:
        lines.append(
            f"{r['method']:<7} {r['rule']:<{width}}  {r['operation']:<22} "
            f"{r['endpoint']}  ({r['why']})"
        )
    if tasks:
        lines.append("")
        width = max(len(t["task"]) for t in tasks)
        for t in tasks:
            lines.append(f"task    {t['task']:<{width}}  {t['operation']:<22} ({t['why']})")
    return "\n".join(lines)


@click.command()
@json_option
@click.option(
    "--celery",
    "celery_spec",
    default=None,
    help="Classify the tasks of this Celery app too (module:attribute; default: the "
    "app's extensions['celery'], as Flask's Celery pattern stores it).",
)
@pass_ctx
def routes(ctx: CliContext, celery_spec: str | None) -> None:
    """Print how each route (and task) is classified, and by which rule."""
    from .state import state_of

    app = getattr(ctx, "app", None)
    if app is None:
        raise click.UsageError("run it as `flask maintenance routes` in an app with the extension")
    classifier = state_of(app).service.classifier
    route_list = route_rows(app, classifier)
    celery = _load(celery_spec) if celery_spec else app.extensions.get("celery")
    tasks = task_rows(celery, classifier) if celery is not None else []
    ctx.emit({"routes": route_list, "tasks": tasks}, _render(route_list, tasks))
