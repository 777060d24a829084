"""``python -m tests.anyapp.preload N``: load the ledger's web app once, then fork ``N``
idle workers from it (as ``gunicorn --preload`` does) and wait to be killed. Prints
``ready <pid> <pid>...`` once every process is up; no request is ever served."""

from __future__ import annotations

import os
import signal
import sys

from maintenance import build_service

from . import ledger


def main() -> None:
    service = build_service(ledger.settings(os.environ), kind="web")
    celery = ledger.make_celery(os.environ, service)
    ledger.create_app(service, celery)  # init_app registers this process as a web node
    children = []
    for _ in range(int(sys.argv[1])):
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        children.append(pid)
    print("ready", os.getpid(), *children, flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
