"""The Redis bus: the current status key and its change channel."""

from __future__ import annotations

import redis

from .domain.status import MaintenanceStatus
from .keys import Keys

# Store and announce a status only if it is newer than what Redis holds, so a
# slow writer (or a node rebuilding Redis from SQL) never rolls the key back.
_PUBLISH_IF_NEWER = """
local current = tonumber(redis.call('GET', KEYS[2]) or '-1')
local incoming = tonumber(ARGV[2])
if current >= incoming and redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('PUBLISH', KEYS[3], ARGV[1])
return 1
"""


class StatusBus:
    """Publish and read the shared status in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._script = client.register_script(_PUBLISH_IF_NEWER)

    def publish(self, status: MaintenanceStatus) -> bool:
        """Store and announce ``status``; False when Redis already had it or newer."""
        return bool(
            self._script(
                keys=[self.keys.status, self.keys.status_version, self.keys.changes],
                args=[status.to_json(), status.version],
            )
        )

    def read(self) -> MaintenanceStatus | None:
        """The status Redis holds, or None when the key is missing (e.g. after a restart)."""
        raw = self.client.get(self.keys.status)
        return MaintenanceStatus.from_json(raw) if raw else None
