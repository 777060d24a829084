"""A Celery app WITHOUT the maintenance hooks, on the fleet's broker (rehearsal tests).

``celery -A tests.celery.plain worker`` is a worker someone started without
``signals.install``; ``python -m tests.celery.plain <queue> <task> <label>...`` is a
publisher without the gate. Neither imports ``celeryconfig`` (which installs the hooks),
so the environment must not set ``TEST_CELERY_WORKER`` (``tests.celery.app`` would).
"""

from __future__ import annotations

import os
import sys

from celery import Celery

from tests.celery.app import register_tasks


def plain_app() -> Celery:
    """The test tasks on the fleet's broker and key prefix, nothing else."""
    app = Celery("maintenance_tests_plain", set_as_current=False)
    app.conf.update(
        broker_url=os.environ["CELERY_BROKER_URL"],
        broker_transport_options={"global_keyprefix": os.environ["CELERY_BROKER_KEYPREFIX"]},
        task_default_queue=os.environ["CELERY_DEFAULT_QUEUE"],
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    register_tasks(app)
    return app


app = plain_app()

if __name__ == "__main__":
    queue, task, *labels = sys.argv[1:]
    for label in labels:
        app.send_task(task, args=[label], queue=queue)
    print(os.getpid(), flush=True)
