"""Stored reports (emergency, rehearsal): save, fetch, list, and render as JSON/Markdown/HTML.

A report kind registers a Markdown renderer; HTML is produced from that Markdown
(the small subset the renderers emit: headings, paragraphs, lists, tables).
"""

from __future__ import annotations

import html
import importlib
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from .domain.status import utcnow
from .errors import NotFound, ValidationError
from .store import schema

if TYPE_CHECKING:
    from .service import EnhancedMaintenanceModeService

FORMATS = ("json", "md", "html")
_markdown_renderers: dict[str, Callable[[dict[str, Any]], str]] = {}


def register_renderer(kind: str) -> Callable[[Callable[[dict[str, Any]], str]], Any]:
    """Decorator: ``fn(body) -> markdown`` renders reports of ``kind``."""

    def decorate(fn: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
        _markdown_renderers[kind] = fn
        return fn

    return decorate


def save_report(
    service: EnhancedMaintenanceModeService,
    kind: str,
    body: dict[str, Any],
    activation_id: str | None = None,
    report_id: str | None = None,
    replace: bool = False,
) -> str:
    """Store ``body`` and return the report id.

    With ``replace``, an older report of the same id is replaced in the same
    transaction; two writers at once collide on the key, and the later one
    simply tries again.
    """
    report_id = report_id or f"{kind[:3]}-{uuid.uuid4().hex[:10]}"
    table = schema.reports
    values = {
        "id": report_id,
        "kind": kind,
        "activation_id": activation_id,
        "created_at": utcnow(),
        "body_json": json.dumps(body, default=str, sort_keys=True),
    }
    attempts = 3 if replace else 1
    for attempt in range(attempts):
        try:
            with service.db.begin() as conn:
                if replace:
                    conn.execute(delete(table).where(table.c.id == report_id))
                conn.execute(insert(table).values(**values))
            break
        except IntegrityError:
            if attempt == attempts - 1:
                raise
    service.record_event(
        f"{kind}_report_created", details={"report_id": report_id}, activation_id=activation_id
    )
    return report_id


def load_report(service: EnhancedMaintenanceModeService, report_id: str) -> dict[str, Any]:
    """The stored report ``report_id`` with its metadata; ``NotFound`` if absent."""
    with service.db.connect() as conn:
        row = conn.execute(select(schema.reports).where(schema.reports.c.id == report_id)).first()
    if row is None:
        raise NotFound(f"no report with id {report_id!r}")
    return {
        "id": row.id,
        "kind": row.kind,
        "activation_id": row.activation_id,
        "created_at": row.created_at.isoformat(),
        "body": json.loads(row.body_json),
    }


def list_reports(
    service: EnhancedMaintenanceModeService, kind: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest reports first (metadata only)."""
    table = schema.reports
    query = select(table.c.id, table.c.kind, table.c.activation_id, table.c.created_at)
    if kind:
        query = query.where(table.c.kind == kind)
    query = query.order_by(table.c.created_at.desc()).limit(limit)
    with service.db.connect() as conn:
        return [
            {**row._mapping, "created_at": row.created_at.isoformat()}
            for row in conn.execute(query).all()
        ]


def render(report: dict[str, Any], fmt: str = "json") -> str:
    """``report`` (from ``load_report``) as JSON, Markdown or a standalone HTML page."""
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})", field="format")
    if fmt == "json":
        return json.dumps(report, indent=2, sort_keys=True, default=str)
    renderer = _renderer(report["kind"])
    markdown = renderer(report["body"])
    if fmt == "md":
        return markdown
    return _page(f"{report['kind'].title()} report {report['id']}", markdown_to_html(markdown))


#: The module registering the renderer of each kind this package stores.
_BUILT_IN = {"test": "maintenance.rehearsal", "emergency": "maintenance.emergency.report"}


def _renderer(kind: str) -> Callable[[dict[str, Any]], str]:
    """The Markdown renderer of ``kind`` (a built-in kind's module is imported on demand:
    ``maintenance report ID`` must not depend on what else the process happened to load)."""
    if kind not in _markdown_renderers and kind in _BUILT_IN:
        importlib.import_module(_BUILT_IN[kind])
    return _markdown_renderers.get(kind, _generic_markdown)


def plain(value: Any) -> str:
    """A stored value as a reader would write it: ``{"ms": 1.5, "node": "w1"}`` becomes
    ``ms 1.5, node w1``, lists are comma-separated, nothing is ``-`` (never a Python
    ``repr`` of a dict or list in a report)."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{str(k).replace('_', ' ')} {plain(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return ", ".join(plain(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _generic_markdown(body: dict[str, Any]) -> str:
    lines = ["# Report", ""]
    lines += [f"* **{k}**: {plain(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """Markdown table lines."""
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        out.append("| " + " | ".join(plain(c).replace("|", "\\|") for c in row) + " |")
    return out


def markdown_to_html(markdown: str) -> str:
    """HTML for the Markdown subset our renderers emit (escaped; no raw HTML passes)."""
    out: list[str] = []
    in_list = in_table = False
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if in_list and not line.startswith("* "):
            out.append("</ul>")
            in_list = False
        if in_table and not line.startswith("|"):
            out.append("</tbody></table>")
            in_table = False
        if not line:
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 4)
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.startswith("* "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if set(line) <= {"|", "-"}:
                continue
            if not in_table:
                out.append("<table><thead><tr>")
                out += [f"<th>{_inline(c)}</th>" for c in cells]
                out.append("</tr></thead><tbody>")
                in_table = True
            else:
                out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in cells) + "</tr>")
        else:
            out.append(f"<p>{_inline(line)}</p>")
    if in_list:
        out.append("</ul>")
    if in_table:
        out.append("</tbody></table>")
    return "\n".join(out)


def _inline(text: str) -> str:
    escaped = html.escape(text)
    parts = escaped.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;
 padding:0 1rem;color:#1d2330}}
table{{border-collapse:collapse;margin:1rem 0}}
td,th{{border:1px solid #ccd;padding:.3rem .6rem;text-align:left}}
th{{background:#eef1f6}}h1{{border-bottom:2px solid #1d2330}}
</style></head><body>
{body}
</body></html>
"""
