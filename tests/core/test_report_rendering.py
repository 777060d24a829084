"""Stored reports render as text a reader writes, never as Python reprs of dicts/lists."""

from __future__ import annotations

from maintenance.reports import markdown_to_html, md_table, plain


def test_nested_values_render_as_plain_text() -> None:
    assert plain({"p50_ms": 0.25, "nodes": ["w1", "w2"]}) == "p50 ms 0.25, nodes w1, w2"
    assert plain(None) == "-" and plain([]) == "-" and plain(3) == "3"
    rows = md_table(["check", "detail"], [["gate", {"refused": 2, "by": "web"}]])
    assert rows[-1] == "| gate | refused 2, by web |"
    page = markdown_to_html("\n".join(rows))
    assert "{" not in page and "'" not in page and "refused 2, by web" in page
