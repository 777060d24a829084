"""A node process for propagation tests: follows the status until stdin closes."""

from __future__ import annotations

import sys

from maintenance import Settings, build_service

settings = Settings.from_env()
service = build_service(settings, kind=sys.argv[1] if len(sys.argv) > 1 else "node").start()
print(service.cache.node_id, flush=True)
sys.stdin.read()
service.close()
