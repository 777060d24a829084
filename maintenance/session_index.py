"""The session index in Redis, its owner: a role index of live sessions, the invalidation
epoch, where the web app keeps server-side sessions, and fast removal of non-admin
ones. Framework-free (Flask: ``maintenance.web``); the operation that logs non-admins
out and tells every node is ``session_invalidation``.

Web nodes record each logged-in session in a per-role sorted set when it logs in
(and at most once a minute afterwards), so invalidation never has to read, let
alone unpickle, a single session: it renames the non-admin set away, deletes the
session keys it names in pipelined batches, and bumps an epoch integer that turns
sessions which cannot be deleted (signed cookies) away on their next request.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from .redisconn import as_text as _text

if TYPE_CHECKING:
    from .keys import Keys
    from .service import EnhancedMaintenanceModeService

ADMIN, USER = "admin", "user"
#: Index members naming a signed-cookie session (nothing to delete server-side).
COOKIE_MEMBER = "~cookie:"
_BATCH = 10_000
#: Session keys one script call deletes: it holds Redis for about a millisecond, so
#: requests loading sessions meanwhile wait little (bench/sessions.py prints it).
_SCRIPT_BATCH = 500

# Pop up to ARGV[1] members off the doomed index and unlink the session keys they
# name (cookie members have none). Session keys are not declared in KEYS: this runs
# only when they live on the same (non-cluster) server as the index.
_PURGE = """
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #members == 0 then return {0, 0} end
local marker, deleted, batch = ARGV[2], 0, {}
for _, member in ipairs(members) do
  if string.sub(member, 1, #marker) ~= marker then
    batch[#batch + 1] = member
    if #batch == 500 then
      deleted = deleted + redis.call('UNLINK', unpack(batch))
      batch = {}
    end
  end
end
if #batch > 0 then deleted = deleted + redis.call('UNLINK', unpack(batch)) end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #members - 1)
return {#members, deleted}
"""
#: Index entries older than this belong to sessions that expired (Flask's default
#: PERMANENT_SESSION_LIFETIME is 31 days).
MAX_AGE = 31 * 24 * 3600
_PRUNE_CHANCE = 1 / 256
_COUNTER_TTL = 30 * 24 * 3600

# Count a session turned away once per activation, however many of its requests
# (a page and its favicon, a replayed cookie) are turned away: add it to the set of
# counted sessions and, only when it was not there yet, to the count.
_COUNT_ONCE = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('INCRBY', KEYS[1], 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class ActiveSessions:
    """Logged-in non-admin sessions seen recently, with a sample for display."""

    count: int
    admin_count: int
    window_seconds: int
    sample: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "count": self.count,
            "admin_count": self.admin_count,
            "window_seconds": self.window_seconds,
            "sample": list(self.sample),
        }


class SessionIndex:
    """The per-role session index and the epoch, on one Redis under one key prefix.

    Index members are the server-side session keys themselves (Flask-Session's
    ``key_prefix + sid``) or ``~cookie:<id>`` for signed-cookie sessions.
    ``store_client`` is the Redis holding the session keys; without it, ``redis``
    is used when the web app registered (``register_store``) that its sessions
    live there.
    """

    def __init__(
        self, redis: redis.Redis, keys: Keys, *, store_client: redis.Redis | None = None
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.store_client = store_client
        self._purge_script = redis.register_script(_PURGE)
        self._count_once_script = redis.register_script(_COUNT_ONCE)

    @classmethod
    def of(
        cls, service: EnhancedMaintenanceModeService, *, store_client: redis.Redis | None = None
    ) -> SessionIndex:
        """The index on ``service``'s Redis and key prefix."""
        return cls(service.redis, service.keys, store_client=store_client)

    # -- recording (web nodes) -------------------------------------------------
    def touch(
        self,
        member: str,
        user: str | None,
        admin: bool,
        *,
        now: float | None = None,
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Record that session ``member`` (store key or cookie id) of ``user`` was seen."""
        role, other = (ADMIN, USER) if admin else (USER, ADMIN)
        own = pipe or self.redis.pipeline(transaction=False)
        own.zadd(self.keys.session_index(role), {member: now or time.time()})
        own.hset(self.keys.session_users(role), member, user or "")
        own.zrem(self.keys.session_index(other), member)
        own.hdel(self.keys.session_users(other), member)
        if pipe is None:
            own.execute()
            if random.random() < _PRUNE_CHANCE:  # keep the index from growing without bound
                self.prune()

    def prune(self, max_age: float = MAX_AGE) -> int:
        """Forget index entries not seen for ``max_age`` seconds (their sessions expired)."""
        cutoff = time.time() - max_age
        dropped = 0
        for role in (ADMIN, USER):
            index, users = self.keys.session_index(role), self.keys.session_users(role)
            old = self.redis.zrangebyscore(index, "-inf", cutoff, start=0, num=_BATCH)
            if old:
                pipe = self.redis.pipeline(transaction=False)
                pipe.zrem(index, *old)
                pipe.hdel(users, *old)
                pipe.execute()
                dropped += len(old)
        return dropped

    def forget(self, member: str) -> None:
        """Drop ``member`` from the index (the session logged out)."""
        pipe = self.redis.pipeline(transaction=False)
        for role in (ADMIN, USER):
            pipe.zrem(self.keys.session_index(role), member)
            pipe.hdel(self.keys.session_users(role), member)
        pipe.execute()

    def register_store(self, key_prefix: str, same_server: bool) -> None:
        """Say where the web app keeps server-side sessions (for processes without the app)."""
        self.redis.hset(
            self.keys.session_store,
            mapping={"key_prefix": key_prefix, "same_server": "1" if same_server else "0"},
        )

    def registered_store(self) -> tuple[str, bool] | None:
        """``(key_prefix, same_server)`` as registered by a web app, if any."""
        raw = self.redis.hgetall(self.keys.session_store)
        if not raw:
            return None
        data = {_text(k): _text(v) for k, v in raw.items()}
        return data.get("key_prefix", ""), data.get("same_server") == "1"

    # -- reading -----------------------------------------------------------------
    def active_non_admin(self, window: float = 1800, sample: int = 10) -> ActiveSessions:
        """Non-admin sessions seen within ``window`` seconds: count and newest ``sample``."""
        self.prune()
        now = time.time()
        since = now - window
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcount(self.keys.session_index(USER), since, "+inf")
        pipe.zcount(self.keys.session_index(ADMIN), since, "+inf")
        pipe.zrevrangebyscore(
            self.keys.session_index(USER), "+inf", since, start=0, num=sample, withscores=True
        )
        count, admins, newest = pipe.execute()
        members = [m for m, _ in newest]
        users = self.redis.hmget(self.keys.session_users(USER), members) if members else []
        rows = [
            {
                "user": _text(who) if who else None,
                "last_seen": seen,
                "kind": "cookie" if _text(m).startswith(COOKIE_MEMBER) else "server",
            }
            for (m, seen), who in zip(newest, users, strict=True)
        ]
        return ActiveSessions(int(count), int(admins), int(window), rows)

    # -- the epoch -----------------------------------------------------------------
    def stored_epoch(self) -> int | None:
        """The epoch in Redis (None when Redis lost it)."""
        raw = self.redis.get(self.keys.session_epoch)
        return None if raw is None else int(raw)

    def restore_epoch(self, value: int) -> int:
        """Put back an epoch Redis lost; one another process set meanwhile wins."""
        self.redis.set(self.keys.session_epoch, value, nx=True)
        stored = self.stored_epoch()
        return value if stored is None else stored

    def next_epoch(self, current: int) -> int:
        """A new epoch above ``current`` (which a Redis restart may have wiped)."""
        epoch = int(self.redis.incr(self.keys.session_epoch))
        if epoch <= current:
            epoch = current + 1
            self.redis.set(self.keys.session_epoch, epoch)
        return epoch

    # -- removing non-admin sessions ---------------------------------------------
    def detach_non_admin(self) -> tuple[str, int]:
        """Move the non-admin index away in one step (O(1), whatever its size):
        ``(token, sessions in it)``. Sessions logging in afterwards land in a fresh
        index; ``purge_detached(token)`` deletes the session keys the detached one names."""
        token = uuid.uuid4().hex[:8]
        index, users = self.keys.session_index(USER), self.keys.session_users(USER)
        # A missing key fails only its own RENAME (nothing to move).
        pipe = self.redis.pipeline(transaction=True)
        pipe.rename(index, f"{index}:purge:{token}")
        pipe.rename(users, f"{users}:purge:{token}")
        pipe.zcard(f"{index}:purge:{token}")
        pipe.sadd(self.keys.session_purges, token)
        results = pipe.execute(raise_on_error=False)
        return token, int(results[2])

    def purge_detached(self, token: str) -> tuple[int, int, bool]:
        """Delete the server-side session keys a detached index names, then the index.

        Returns ``(sessions, keys deleted, whether a session store was reachable)``:
        keys are deleted with ``store_client``, or on this Redis when the web app
        registered that its sessions live here.
        """
        store = self._store_client()
        doomed_index = f"{self.keys.session_index(USER)}:purge:{token}"
        doomed_users = f"{self.keys.session_users(USER)}:purge:{token}"
        if store is not None and same_server(store, self.redis):
            count, deleted = self._purge_in_redis(doomed_index)
        else:
            count, deleted = self._purge_from_here(doomed_index, store)
        pipe = self.redis.pipeline(transaction=False)
        pipe.unlink(doomed_index, doomed_users)
        pipe.srem(self.keys.session_purges, token)
        pipe.execute()
        return count, deleted, store is not None

    def unfinished_purges(self) -> list[str]:
        """Tokens of detached indexes whose clean-up has not finished (or died)."""
        return sorted(_text(t) for t in self.redis.smembers(self.keys.session_purges))

    def purge_non_admin(self) -> tuple[int, int, bool]:
        """Empty the non-admin index, deleting the server-side session keys it names
        (``detach_non_admin`` then ``purge_detached``)."""
        token, _ = self.detach_non_admin()
        return self.purge_detached(token)

    def count_invalidated(self, activation_id: str, count: int) -> None:
        """Add ``count`` to the sessions invalidated during one activation."""
        counter = self.keys.invalidated_sessions(activation_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.incrby(counter, count)
        pipe.expire(counter, _COUNTER_TTL)
        pipe.execute()

    def count_turned_away(self, activation_id: str, member: str | None) -> None:
        """Count one session turned away during an activation, once: its member is
        remembered, so another request with the same stale cookie adds nothing
        (a session without an index member is counted each time)."""
        if member is None:
            self.count_invalidated(activation_id, 1)
            return
        self._count_once_script(
            keys=[
                self.keys.invalidated_sessions(activation_id),
                self.keys.invalidated_members(activation_id),
            ],
            args=[member, _COUNTER_TTL],
        )

    def _purge_in_redis(self, doomed_index: str) -> tuple[int, int]:
        # The session keys live on this server: delete them where they are, in
        # bounded batches (each script call holds Redis for a few milliseconds)
        # and without shipping 100k names to Python and back.
        count = deleted = 0
        while True:
            seen, removed = self._purge_script(
                keys=[doomed_index], args=[_SCRIPT_BATCH, COOKIE_MEMBER]
            )
            if not seen:
                return count, deleted
            count += int(seen)
            deleted += int(removed)

    def _purge_from_here(self, doomed_index: str, store: redis.Redis | None) -> tuple[int, int]:
        if store is None:  # cookie sessions only: nothing to delete, just count
            return int(self.redis.zcard(doomed_index)), 0
        count = deleted = start = 0
        while True:
            members = self.redis.zrange(doomed_index, start, start + _BATCH - 1)
            if not members:
                return count, deleted
            start += len(members)
            count += len(members)
            deleted += self._delete(store, members)

    def store_known(self) -> bool:
        """Whether server-side session keys can be deleted from here."""
        try:
            return self._store_client() is not None
        except Exception:
            return False

    def _store_client(self) -> redis.Redis | None:
        if self.store_client is not None:
            return self.store_client
        registered = self.registered_store()
        if registered is not None and registered[1]:
            return self.redis
        return None

    @staticmethod
    def _delete(client: redis.Redis, members: Iterable[bytes]) -> int:
        names = [m for m in members if not _text(m).startswith(COOKIE_MEMBER)]
        if not names:
            return 0
        pipe = client.pipeline(transaction=False)
        for i in range(0, len(names), 1000):
            pipe.unlink(*names[i : i + 1000])
        return sum(int(n) for n in pipe.execute())


def same_server(a: redis.Redis, b: redis.Redis) -> bool:
    """Whether two clients talk to the same Redis server and database."""
    if a is b:
        return True

    def where(client: redis.Redis) -> tuple[Any, ...]:
        pool = client.connection_pool
        kw = pool.connection_kwargs
        # A Sentinel-managed pool has no host of its own: it is named by its master.
        master = getattr(pool, "service_name", None)
        return (kw.get("host"), kw.get("port"), kw.get("db", 0), kw.get("path"), master)

    try:
        return where(a) == where(b)
    except AttributeError:
        return False
