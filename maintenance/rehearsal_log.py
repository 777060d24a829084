"""What each node did during a rehearsal: attempts it would have refused, messages no publish
gate judged, and how long its own gates took to decide.

Owner of ``{p}:rehearsal:<activation>:seen``, ``:unjudged`` and ``:timings``.

* ``seen`` -- every would-be-blocked attempt is counted under the node that judged it
  (summed in memory and written with the attempt counters by ``attempts.AttemptRecorder``'s
  flusher: nothing on the request path, no extra round trip).
* ``unjudged`` -- a worker whose gate receives, during a rehearsal, a message of a
  would-be-blocked type that no publish gate judged counts it under the message's
  ``origin`` (Celery's publisher ``gen<pid>@<host>``): a publisher without the gate,
  or one still on a status older than the rehearsal.
* ``timings`` -- each gate (web request, publish, worker receipt) times its decisions
  while a rehearsal runs in an in-process ``GateTimings``; the node's heartbeat writes
  the totals here (one ``HSET`` per heartbeat, only while there is something new).
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

from .keys import Keys
from .redisconn import as_text

TTL = 30 * 24 * 3600
_SEP = "\t"
#: Why a message reached a worker unjudged (``problem`` of ``Unjudged``).
NO_HOOKS = "no-hooks"  # no stamp at all: the publishing app has no gate (its process, no hooks)
NOT_JUDGED = "not-judged"  # stamped after the rehearsal began, never judged (no gate, old status)


@dataclass(frozen=True)
class Unjudged:
    """Messages of a would-be-blocked type that reached a worker without a publish gate's say."""

    problem: str
    origin: str
    operation: str
    seen_by: str
    messages: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "problem": self.problem,
            "origin": self.origin,
            "operation": self.operation,
            "seen_by": self.seen_by,
            "messages": self.messages,
        }


@dataclass
class FleetLog:
    """Everything the nodes recorded about one rehearsal."""

    #: node id -> channel -> operation -> would-be-blocked attempts
    seen: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    unjudged: list[Unjudged] = field(default_factory=list)
    #: node id -> channel -> timing summary (``GateTimings.summary``)
    timings: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


#: Who judged a would-be-blocked attempt: (node, channel, unjudged problem, publisher origin).
Detail = tuple[str, str, str | None, str | None]


def detail(attempt: Any) -> Detail:
    """The per-node part of a would-be-blocked ``attempts.BlockedAttempt``."""
    problem, origin = attempt.unjudged if attempt.unjudged is not None else (None, None)
    return (attempt.node or "unknown", attempt.channel, problem, origin)


def count(pipe: Any, keys: Keys, activation: str, op: str, detail: Detail, n: int) -> None:
    """Add ``n`` would-be-blocked attempts of ``op`` judged as ``detail`` to ``pipe``."""
    node, channel, problem, origin = detail
    seen = keys.rehearsal_seen(activation)
    pipe.hincrby(seen, _SEP.join((node, channel, op)), n)
    pipe.expire(seen, TTL)
    if problem is not None:
        name = keys.rehearsal_unjudged(activation)
        pipe.hincrby(name, _SEP.join((problem, origin or "unknown", op, node)), n)
        pipe.expire(name, TTL)


class GateTimings:
    """This process's gate decision times during rehearsals: count, total, max and a
    power-of-two histogram per (activation, channel). Cheap enough for the request path;
    used only while a rehearsal runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], list[Any]] = {}
        self._dirty: set[str] = set()

    def add(self, activation_id: str | None, channel: str, elapsed_ns: int) -> None:
        """One decision of ``channel``'s gate that took ``elapsed_ns``."""
        aid = activation_id or "none"
        with self._lock:
            entry = self._data.get((aid, channel))
            if entry is None:
                entry = self._data[(aid, channel)] = [0, 0, 0, defaultdict(int)]
            entry[0] += 1
            entry[1] += elapsed_ns
            if elapsed_ns > entry[2]:
                entry[2] = elapsed_ns
            entry[3][max(0, elapsed_ns).bit_length()] += 1
            self._dirty.add(aid)

    def take_dirty(self) -> dict[str, dict[str, dict[str, float]]]:
        """Summaries of the activations that changed since the last call."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            out: dict[str, dict[str, dict[str, float]]] = {}
            for (aid, channel), entry in self._data.items():
                if aid in dirty:
                    out.setdefault(aid, {})[channel] = summary(*entry)
            return out

    def flush(self, client: redis.Redis, keys: Keys, node_id: str) -> None:
        """Write what changed under ``node_id`` (the node's heartbeat calls this)."""
        changed = self.take_dirty()
        if not changed:
            return
        pipe = client.pipeline(transaction=False)
        for aid, channels in changed.items():
            name = keys.rehearsal_timings(aid)
            pipe.hset(name, node_id, json.dumps(channels, sort_keys=True))
            pipe.expire(name, TTL)
        pipe.execute()


def summary(n: int, total_ns: int, max_ns: int, buckets: dict[int, int]) -> dict[str, float]:
    """Decisions, mean, p50/p99 (upper bound of their power-of-two bucket) and max, in us."""

    def percentile(q: float) -> float:
        rank, seen = q * n, 0
        for bucket in sorted(buckets):
            seen += buckets[bucket]
            if seen >= rank:
                return (1 << bucket) / 1000
        return max_ns / 1000

    return {
        "decisions": n,
        "mean_us": round(total_ns / n / 1000, 3) if n else 0.0,
        "p50_us": round(min(percentile(0.5), max_ns / 1000), 3),
        "p99_us": round(min(percentile(0.99), max_ns / 1000), 3),
        "max_us": round(max_ns / 1000, 3),
    }


def read(client: redis.Redis, keys: Keys, activation_id: str) -> FleetLog:
    """What the nodes recorded about one rehearsal."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.rehearsal_seen(activation_id))
    pipe.hgetall(keys.rehearsal_unjudged(activation_id))
    pipe.hgetall(keys.rehearsal_timings(activation_id))
    seen_raw, unjudged_raw, timings_raw = pipe.execute()
    log = FleetLog()
    for raw, n in seen_raw.items():
        node, channel, op = as_text(raw).split(_SEP)
        log.seen.setdefault(node, {}).setdefault(channel, {})[op] = int(n)
    for raw, n in unjudged_raw.items():
        problem, origin, op, worker = as_text(raw).split(_SEP)
        log.unjudged.append(Unjudged(problem, origin, op, worker, int(n)))
    log.unjudged.sort(key=lambda u: (u.origin, u.operation, u.seen_by))
    for raw, value in timings_raw.items():
        log.timings[as_text(raw)] = json.loads(value)
    return log


def clear(client: redis.Redis, keys: Keys, activation_id: str) -> None:
    """Forget one rehearsal's per-node records (a rehearsal starting over)."""
    client.delete(
        keys.rehearsal_seen(activation_id),
        keys.rehearsal_unjudged(activation_id),
        keys.rehearsal_timings(activation_id),
    )
