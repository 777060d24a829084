"""The command layer: every operator action implemented once.

Each action (``enable``, ``disable``, ``emergency`` declare / lift / critical-only,
``sessions`` invalidation, ``login_block``, ...) takes the service, the ``Actor``
asking and the action's already-parsed input, checks who may do it (``authorize``),
commits the change, runs its follow-up effects and returns an ``Outcome`` that says
what committed and which effects succeeded or failed. The CLI, the JSON API, the
admin panel and the service's Python methods are adapters that build an ``Actor``,
call the command and render its ``Outcome`` (one JSON body, one CLI line).
"""

from __future__ import annotations

from .actor import Actor, authorize
from .outcome import Effect, Outcome

__all__ = ["Actor", "Effect", "Outcome", "authorize"]
