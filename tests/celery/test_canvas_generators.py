"""Groups and chords built from a generator, against real prefork workers.

Celery publishes a lazy header member by member as the generator yields it
(a generator may wait for its earlier members to run: Celery issue #3021).
While nothing can be refused -- TEST mode, an admin's bypass -- the gate
judges each member as it is yielded and keeps that laziness. While something
could be refused, all-or-nothing wins: the header is unrolled and judged
before the first publish, and a refusal sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import pytest
from celery import chord, group

from signals import PublishRefused
from tests.helpers import wait_for

from .conftest import ADMIN, Fleet

pytestmark = pytest.mark.slow
#: A caption job on an idle fleet worker runs in milliseconds; generous for a busy machine.
RUN_DEADLINE = 30.0


def lazy_header(fleet: Fleet, tag: str, size: int) -> Iterator[Any]:
    """Yield ``size`` caption jobs; before the last, insist that the first already ran."""
    caption = fleet.tasks["generate_caption"]
    for i in range(size):
        if i == size - 1:
            wait_for(
                lambda: fleet.runs(f"{tag}-0") == 1,
                RUN_DEADLINE,
                what="the first member to run before the generator yields the last",
            )
        yield caption.s(f"{tag}-{i}")


@pytest.mark.parametrize("how", ["test mode", "admin bypass"])
def test_a_generator_chord_is_published_as_it_is_yielded(clean_fleet: Fleet, how: str) -> None:
    fleet = clean_fleet
    mode = "test" if how == "test mode" else "normal"
    fleet.service.enable_maintenance("rehearsal", "30m", mode=mode, enabled_by="ops", wait=5)
    tag = f"gen-{mode}"
    with fleet.service.bypass(ADMIN) if how == "admin bypass" else nullcontext():
        result = chord(lazy_header(fleet, tag, 3), fleet.tasks["collect"].s(f"{tag}-body"))()
    assert result.get(timeout=RUN_DEADLINE) == f"{tag}-body"
    assert [fleet.runs(f"{tag}-{i}") for i in range(3)] == [1, 1, 1]
    assert fleet.runs(f"{tag}-body") == 1
    if how == "test mode":
        # Each lazily judged member was still counted as a would-be refusal.
        would = fleet.service.get_maintenance_status().extra["would_block_attempts"]
        assert would["caption_generation"] >= 3


def test_a_generator_group_is_published_as_it_is_yielded_in_test_mode(clean_fleet: Fleet) -> None:
    fleet = clean_fleet
    fleet.service.enable_maintenance("rehearsal", "30m", mode="test", enabled_by="ops", wait=5)
    result = group(lazy_header(fleet, "gen-group", 3)).apply_async()
    assert result.get(timeout=RUN_DEADLINE) == [f"gen-group-{i}" for i in range(3)]


def test_a_blocked_member_late_in_a_generator_refuses_the_whole_chord(
    clean_fleet: Fleet, probe_app: Any
) -> None:
    """NORMAL maintenance: the allowed members yielded first are not published either."""
    fleet = clean_fleet
    app, queue = probe_app
    fleet.service.enable_maintenance("db upgrade", "30m", enabled_by="ops", wait=5)
    report, caption = app.tasks["reports.build"], app.tasks["captions.generate_caption"]
    yielded: list[str] = []

    def header() -> Iterator[Any]:
        for label in ("ok-1", "ok-2"):
            yielded.append(label)
            yield report.s(label)
        yielded.append("blocked")
        yield caption.s("blocked")

    for canvas in (
        lambda: chord(header(), report.s("body")).apply_async(),
        lambda: group(header()).apply_async(),
    ):
        yielded.clear()
        with pytest.raises(PublishRefused):
            canvas()
        assert yielded == ["ok-1", "ok-2", "blocked"]  # unrolled before the first publish
        assert fleet.queue_length(queue) == 0
        assert fleet.unacked() == 0
