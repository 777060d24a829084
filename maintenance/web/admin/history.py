"""The panel's history: one page of the whole event log at a time, paged in SQL
(``?history_offset=``), optionally of one kind (``?history_kind=``), with the total.

The page renders the requested page itself (so it pages without JavaScript); its
script asks the panel's ``/history`` for the others."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...domain.history import validate_kinds
from ...errors import ValidationError
from .timefmt import iso_seconds

if TYPE_CHECKING:
    from ...service import EnhancedMaintenanceModeService
    from .config import AdminConfig

OFFSET = "history_offset"
KIND = "history_kind"
#: The largest offset taken (as the API's ``before_id``: far beyond any log).
MAX_OFFSET = 2**62
_DIGITS = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class HistoryQuery:
    """Which page of the history: its first event's position and an optional kind."""

    offset: int = 0
    kind: str | None = None


def parse_query(args: Mapping[str, str]) -> HistoryQuery:
    """``history_offset`` and ``history_kind`` from a query string; ``ValidationError``
    (naming the parameter) when either is malformed or the kind unknown."""
    raw = args.get(OFFSET) or "0"
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_OFFSET:
        raise ValidationError(
            f"{OFFSET} must be a whole number from 0 to {MAX_OFFSET}", field=OFFSET
        )
    kind = args.get(KIND) or None
    if kind is not None:
        try:
            validate_kinds((kind,))
        except ValidationError:
            raise ValidationError(f"{KIND}: unknown event kind {kind!r}", field=KIND) from None
    return HistoryQuery(offset=int(raw), kind=kind)


def history_view(
    service: EnhancedMaintenanceModeService, config: AdminConfig, query: HistoryQuery
) -> dict[str, Any]:
    """The page asked for (``events``, each with ``when`` in UTC as the panel writes
    it; ``total``, ``offset``, ``limit``), its ``kind`` and every kind the log holds
    (for the filter)."""
    kinds = (query.kind,) if query.kind else None
    page = service.history_page(config.history_page, query.offset, kinds=kinds)
    events = [{**e.to_dict(), "when": iso_seconds(e.at)} for e in page.events]
    return {
        **page.to_dict(),
        "events": events,
        "kind": query.kind,
        "kinds": service.events.kinds(),
    }
