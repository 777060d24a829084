"""Jobs whose termination this process is sending right now: their registry entries stay
until their process is gone (a job holding SIGTERM off runs on until SIGKILL).

The termination ladder opens ``holding(ids)``; the ``task_revoked`` receiver
(``signals.tracking``), which fires as the signal is *sent*, asks ``is_held``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

_held: set[str] = set()


@contextmanager
def holding(ids: Iterable[str]) -> Iterator[None]:
    """Terminations of ``ids`` sent inside the block leave their registry entries alone.

    For a caller that unlists the jobs itself once their processes are gone.
    """
    added = set(ids) - _held
    _held.update(added)
    try:
        yield
    finally:
        _held.difference_update(added)


def is_held(task_id: str | None) -> bool:
    """Whether a termination of ``task_id`` is being sent under ``holding``."""
    return task_id in _held
