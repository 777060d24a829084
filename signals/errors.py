"""``PublishRefused``: the ``OperationBlocked`` a refused Celery publish raises."""

from __future__ import annotations

import click

from maintenance import MaintenanceStatus, OperationBlocked, OperationType

#: ``celery call`` exits with this code when maintenance refuses the publish
#: (EX_TEMPFAIL from sysexits.h: a temporary condition, try again later).
EXIT_REFUSED = 75


class PublishRefused(OperationBlocked, click.ClickException):  # type: ignore[misc]
    """A task publish refused during maintenance; nothing reached the broker.

    Also a ``click.ClickException`` so that ``celery -A proj call name``
    (a Click program running in standalone mode) prints the maintenance
    message on one line and exits with ``EXIT_REFUSED`` instead of a traceback.
    (Both bases keep the text in ``message``; mypy flags the shared attribute.)
    """

    exit_code = EXIT_REFUSED

    def __init__(
        self,
        operation: OperationType,
        status: MaintenanceStatus,
        retry_after: int | None,
        message: str | None = None,
        task_name: str | None = None,
    ) -> None:
        super().__init__(operation, status, retry_after, message)
        self.task_name = task_name

    def format_message(self) -> str:
        """The line Click prints after ``Error:``."""
        return self.message
