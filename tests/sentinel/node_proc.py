"""A node process for failover tests: one JSON line per line read on stdin.

It prints its node id, then answers every line with what a request on this
node would see: the status (with live counters, which touch Redis), its
health, and whether a regular user's caption job would be refused. A Redis
error escaping any of that would end the process: the test would see it.
"""

from __future__ import annotations

import json
import sys

from maintenance import OperationType, Settings, build_service

service = build_service(Settings.from_env(), kind=sys.argv[1]).start()
print(json.dumps({"node_id": service.cache.node_id}), flush=True)
for _line in sys.stdin:
    status = service.get_maintenance_status()
    print(
        json.dumps(
            {
                "version": status.version,
                "is_active": status.is_active,
                "mode": status.mode.value,
                "activation_id": status.activation_id,
                "degraded": status.degraded,
                "degraded_reason": status.degraded_reason,
                "redis_ok": service.cache.health.redis_ok,
                "blocks_captions": service.is_operation_blocked(
                    OperationType.CAPTION_GENERATION, {"role": "user"}
                ),
            }
        ),
        flush=True,
    )
service.close()
