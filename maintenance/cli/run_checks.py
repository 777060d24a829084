"""``maintenance check``: run the registered consistency checks now; exit 1 if any fails."""

from __future__ import annotations

import click

from ..integrity import CheckReport, registry, run_checks
from .context import CliContext, json_option, pass_ctx


@click.command("check")
@click.option("--only", "only", multiple=True, help="Run only these checks (repeatable).")
@click.option("--list", "list_only", is_flag=True, help="List the registered checks.")
@click.option("--no-record", is_flag=True, help="Do not write the results to the event log.")
@json_option
@pass_ctx
def check(ctx: CliContext, only: tuple[str, ...], list_only: bool, no_record: bool) -> None:
    """Run the consistency checks apps register (``maintenance.checks`` entry points)."""
    service = ctx.service
    registry.load_plugins(service)
    if list_only:
        rows = [{"check": c.name, "description": c.description} for c in registry.checks()]
        human = "\n".join(f"{r['check']:<32} {r['description']}" for r in rows)
        ctx.emit(rows, human or "No consistency checks registered.")
        return
    status = service.status
    names = [n.strip() for o in only for n in o.split(",") if n.strip()] or None
    report = run_checks(
        service,
        names=names,
        trigger="cli",
        activation_id=status.activation_id if status.is_active else None,
        record=not no_record,
    )
    ctx.emit(report.to_dict(), _human(report))
    if not report.ok:
        raise click.exceptions.Exit(1)


def _human(report: CheckReport) -> str:
    if not report.results:
        return "No consistency checks registered."
    lines = []
    for result in report.results:
        mark = "ok  " if result.ok else "FAIL"
        lines.append(f"{mark}  {result.name}  ({result.duration_ms:.0f} ms)")
        if result.error:
            lines.append(f"      could not run: {result.error}")
        for problem in result.problems[:20]:
            lines.append(f"      - {problem}")
        if len(result.problems) > 20:
            lines.append(f"      ... and {len(result.problems) - 20} more")
    failed = len(report.failed)
    lines.append(f"{len(report.results) - failed} passed, {failed} failed.")
    return "\n".join(lines)
