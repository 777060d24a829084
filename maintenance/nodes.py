"""The node registry: heartbeats and the status version each process has applied."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from .keys import Keys


def new_node_id(kind: str) -> str:
    """A unique, readable id for this process: ``kind@host:pid:random``."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class NodeInfo:
    """What the registry knows about one node."""

    node_id: str
    applied_version: int
    last_seen: float
    info: dict[str, Any]

    @property
    def kind(self) -> str:
        """``web``, ``worker``, ``beat``... as the node registered itself."""
        return str(self.info.get("kind", self.node_id.split("@", 1)[0]))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "node_id": self.node_id,
            "kind": self.kind,
            "applied_version": self.applied_version,
            "last_seen": self.last_seen,
            **{k: v for k, v in self.info.items() if k != "kind"},
        }


class NodeRegistry:
    """Plain functions over the registry keys, with an explicit client."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def heartbeat(self, node_id: str, applied_version: int, info: dict[str, Any]) -> None:
        """Say this node is alive and what it has applied (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.keys.nodes, {node_id: time.time()})
        pipe.hset(self.keys.node_applied, node_id, applied_version)
        pipe.hset(self.keys.node_info, node_id, json.dumps(info))
        pipe.execute()

    def report_applied(self, node_id: str, version: int) -> None:
        """Record and announce that this node applied ``version`` (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.node_applied, node_id, version)
        pipe.publish(self.keys.acks, f"{node_id} {version}")
        pipe.execute()

    def deregister(self, node_id: str) -> None:
        """Remove this node (clean shutdown)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(self.keys.nodes, node_id)
        pipe.hdel(self.keys.node_applied, node_id)
        pipe.hdel(self.keys.node_info, node_id)
        pipe.execute()

    def live_nodes(self, ttl: float) -> dict[str, NodeInfo]:
        """Nodes heard from within ``ttl`` seconds."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        pipe.zrangebyscore(self.keys.nodes, now - ttl, "+inf", withscores=True)
        pipe.hgetall(self.keys.node_applied)
        pipe.hgetall(self.keys.node_info)
        members, applied, infos = pipe.execute()
        out = {}
        for raw_id, seen in members:
            node_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            version = applied.get(raw_id) or applied.get(node_id.encode(), b"0")
            info_raw = infos.get(raw_id) or infos.get(node_id.encode())
            out[node_id] = NodeInfo(
                node_id=node_id,
                applied_version=int(version or 0),
                last_seen=float(seen),
                info=json.loads(info_raw) if info_raw else {},
            )
        return out

    def reap(self, ttl: float) -> list[str]:
        """Forget nodes silent for longer than ``ttl``; return their ids."""
        cutoff = time.time() - ttl
        dead = [
            d.decode() if isinstance(d, bytes) else d
            for d in self.client.zrangebyscore(self.keys.nodes, "-inf", cutoff)
        ]
        for node_id in dead:
            self.deregister(node_id)
        return dead
