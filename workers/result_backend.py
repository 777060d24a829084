"""The result backend a deployment's settings name must be one Celery can build.

Celery builds the backend lazily, on the first ``send_task`` or ``AsyncResult``;
a URL it cannot load (a ``pyamqp://`` broker URL taken as the backend) then
fails publishes and recoveries one by one. Checked when the settings are read,
it is one clear error at start instead.
"""

from __future__ import annotations

from types import SimpleNamespace

from celery.app.backends import by_url
from celery.exceptions import ImproperlyConfigured
from kombu.utils.url import maybe_sanitize_url


def check_result_backend(url: str, *, defaulted: bool) -> None:
    """Raise ``ImproperlyConfigured`` unless Celery can load a result backend for ``url``.

    ``defaulted``: the URL was not given as the result backend but taken from the
    broker's (the message then says to set ``CELERY_RESULT_BACKEND``).
    """
    try:
        # Only the backend class is resolved (no connection); the loader is only
        # asked for its overrides.
        by_url(url, SimpleNamespace(override_backends={}))
    except Exception as exc:
        shown = maybe_sanitize_url(url)
        if defaulted:
            raise ImproperlyConfigured(
                f"CELERY_RESULT_BACKEND is not set and the broker URL {shown} is not a result "
                f"backend Celery can build ({exc}); set CELERY_RESULT_BACKEND, e.g. rpc:// or "
                "a redis:// URL (or 'disabled' to keep no results)"
            ) from exc
        raise ImproperlyConfigured(
            f"CELERY_RESULT_BACKEND={shown} is not a result backend Celery can build ({exc})"
        ) from exc
