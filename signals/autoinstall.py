"""Install the hooks from a Celery config module (``celeryconfig.py`` calls ``from_config()``).

A config module cannot name its app, so this catches every app configured
from it: the app whose configuration is loading right now (Celery imports the
config module inside ``Celery._load_config`` and sends the app's
``on_after_configure`` right after, ``app/base.py``), and, in workers and
beat, any app at all through ``import_modules`` (sent by
``loader.import_default_modules`` before a worker builds its blueprint).
"""

from __future__ import annotations

from typing import Any

from celery import _state
from celery.signals import import_modules

from .install import install


def _install_sender(sender: Any = None, **_: Any) -> None:
    if sender is not None:
        install(sender)


def from_config() -> None:
    """Install on the app being configured now and on every worker/beat app (idempotent)."""
    import_modules.connect(_install_sender, weak=False, dispatch_uid="maintenance-autoinstall")
    app = getattr(_state._tls, "current_app", None) or _state.default_app
    if app is not None and not app.configured:
        app.on_after_configure.connect(
            _install_sender, weak=False, dispatch_uid="maintenance-autoinstall-app"
        )
