"""Session bookkeeping in Redis: a role index of live sessions, the invalidation epoch,
and fast removal of non-admin server-side sessions. Framework-free (Flask: ``maintenance.web``).

Web nodes record each logged-in session in a per-role sorted set when it logs in
(and at most once a minute afterwards), so invalidation never has to read, let
alone unpickle, a single session: it renames the non-admin set away, deletes the
session keys it names in pipelined batches, and bumps an epoch integer that turns
sessions which cannot be deleted (signed cookies) away on their next request.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from . import events
from .redisconn import REDIS_ERRORS

if TYPE_CHECKING:
    from .service import EnhancedMaintenanceModeService

log = logging.getLogger("maintenance.sessions")

ADMIN, USER = "admin", "user"
#: Index members naming a signed-cookie session (nothing to delete server-side).
COOKIE_MEMBER = "~cookie:"
EVENT_KIND = "sessions_invalidated"
_BATCH = 10_000
_SCRIPT_BATCH = 5_000

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


@dataclass(frozen=True)
class InvalidationResult:
    """What ``invalidate_non_admin`` did."""

    count: int  # non-admin sessions invalidated (index entries)
    deleted: int  # server-side session keys removed
    epoch: int  # sessions stamped with an older epoch are turned away
    seconds: float
    server_side: bool  # whether server-side session keys could be deleted
    status_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "count": self.count,
            "deleted": self.deleted,
            "epoch": self.epoch,
            "seconds": round(self.seconds, 6),
            "server_side": self.server_side,
            "status_version": self.status_version,
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SessionIndex:
    """The per-role session index and the epoch, for one maintenance service.

    Index members are the server-side session keys themselves (Flask-Session's
    ``key_prefix + sid``) or ``~cookie:<id>`` for signed-cookie sessions.
    ``store_client`` is the Redis holding the session keys; without it, this
    service's Redis is used when the web app registered (``register_store``)
    that its sessions live there.
    """

    def __init__(
        self,
        service: EnhancedMaintenanceModeService,
        *,
        store_client: redis.Redis | None = None,
    ) -> None:
        self.service = service
        self.keys = service.keys
        self.store_client = store_client
        self._purge_script = service.redis.register_script(_PURGE)

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
        own = pipe or self.service.redis.pipeline(transaction=False)
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
            old = self.service.redis.zrangebyscore(index, "-inf", cutoff, start=0, num=_BATCH)
            if old:
                pipe = self.service.redis.pipeline(transaction=False)
                pipe.zrem(index, *old)
                pipe.hdel(users, *old)
                pipe.execute()
                dropped += len(old)
        return dropped

    def forget(self, member: str) -> None:
        """Drop ``member`` from the index (the session logged out)."""
        pipe = self.service.redis.pipeline(transaction=False)
        for role in (ADMIN, USER):
            pipe.zrem(self.keys.session_index(role), member)
            pipe.hdel(self.keys.session_users(role), member)
        pipe.execute()

    def register_store(self, key_prefix: str, same_server: bool) -> None:
        """Say where the web app keeps server-side sessions (for processes without the app)."""
        self.service.redis.hset(
            self.keys.session_store,
            mapping={"key_prefix": key_prefix, "same_server": "1" if same_server else "0"},
        )

    def registered_store(self) -> tuple[str, bool] | None:
        """``(key_prefix, same_server)`` as registered by a web app, if any."""
        raw = self.service.redis.hgetall(self.keys.session_store)
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
        pipe = self.service.redis.pipeline(transaction=False)
        pipe.zcount(self.keys.session_index(USER), since, "+inf")
        pipe.zcount(self.keys.session_index(ADMIN), since, "+inf")
        pipe.zrevrangebyscore(
            self.keys.session_index(USER), "+inf", since, start=0, num=sample, withscores=True
        )
        count, admins, newest = pipe.execute()
        members = [m for m, _ in newest]
        users = self.service.redis.hmget(self.keys.session_users(USER), members) if members else []
        rows = [
            {
                "user": _text(who) if who else None,
                "last_seen": seen,
                "kind": "cookie" if _text(m).startswith(COOKIE_MEMBER) else "server",
            }
            for (m, seen), who in zip(newest, users, strict=True)
        ]
        return ActiveSessions(int(count), int(admins), int(window), rows)

    def epoch(self) -> int:
        """The current session epoch; rebuilt from the SQL event log if Redis lost it."""
        raw = self.service.redis.get(self.keys.session_epoch)
        if raw is not None:
            return int(raw)
        value = self._epoch_from_sql()
        if value:
            # NX: never roll back an epoch another process set meanwhile.
            self.service.redis.set(self.keys.session_epoch, value, nx=True)
            raw = self.service.redis.get(self.keys.session_epoch)
            return int(raw) if raw is not None else value
        return 0

    def _epoch_from_sql(self) -> int:
        for event in self.service.events.history(1, kinds=(EVENT_KIND,)):
            return int(event.details.get("epoch") or 0)
        return 0

    # -- invalidating ------------------------------------------------------------
    def invalidate_non_admin(
        self,
        actor: str,
        *,
        wait: float | None = None,
        reason: str | None = None,
    ) -> InvalidationResult:
        """Remove every non-admin session and turn away the ones that cannot be removed.

        Server-side keys named in the index are deleted (with ``store_client``,
        or this Redis when the web app registered that its sessions live here);
        the epoch goes up so
        cookie sessions and anything the index missed are refused on their next
        request; the new epoch is published in the status (fenced by ``wait``)
        so every web node knows it before this returns.
        """
        started = time.perf_counter()
        client = self.service.redis
        current_epoch = self.epoch()
        store = self._store_client()
        token = uuid.uuid4().hex[:8]
        index, users = self.keys.session_index(USER), self.keys.session_users(USER)
        doomed_index, doomed_users = f"{index}:purge:{token}", f"{users}:purge:{token}"
        # Move the set away atomically: sessions logging in meanwhile land in a
        # fresh set and are not lost from the index. A missing key fails only its
        # own RENAME (nothing to move).
        pipe = client.pipeline(transaction=True)
        pipe.rename(index, doomed_index)
        pipe.rename(users, doomed_users)
        pipe.execute(raise_on_error=False)
        if store is not None and same_server(store, client):
            count, deleted = self._purge_in_redis(doomed_index)
        else:
            count, deleted = self._purge_from_here(doomed_index, store)
        epoch = int(client.incr(self.keys.session_epoch))
        if epoch <= current_epoch:  # Redis restarted between the two calls
            epoch = current_epoch + 1
            client.set(self.keys.session_epoch, epoch)
        pipe = client.pipeline(transaction=False)
        pipe.delete(doomed_index, doomed_users)
        status = self.service.status
        if status.activation_id and count:
            counter = self.keys.invalidated_sessions(status.activation_id)
            pipe.incrby(counter, count)
            pipe.expire(counter, _COUNTER_TTL)
        pipe.execute()
        version = self._publish(actor, status, count, deleted, epoch, wait, reason)
        result = InvalidationResult(
            count=count,
            deleted=deleted,
            epoch=epoch,
            seconds=time.perf_counter() - started,
            server_side=store is not None,
            status_version=version,
        )
        log.info(
            "invalidated %d non-admin session(s) (%d server-side keys) by %s; epoch %d",
            count,
            deleted,
            actor,
            epoch,
        )
        events.emit(events.sessions_invalidated, self.service, count=count, actor=actor)
        return result

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
        client = self.service.redis
        if store is None:  # cookie sessions only: nothing to delete, just count
            return int(client.zcard(doomed_index)), 0
        count = deleted = start = 0
        while True:
            members = client.zrange(doomed_index, start, start + _BATCH - 1)
            if not members:
                return count, deleted
            start += len(members)
            count += len(members)
            deleted += self._delete(store, members)

    def _store_client(self) -> redis.Redis | None:
        if self.store_client is not None:
            return self.store_client
        registered = self.registered_store()
        if registered is not None and registered[1]:
            return self.service.redis
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

    def _publish(
        self,
        actor: str,
        status: Any,
        count: int,
        deleted: int,
        epoch: int,
        wait: float | None,
        reason: str | None,
    ) -> int | None:
        try:
            result = self.service.update_status(
                actor,
                EVENT_KIND,
                reason=reason,
                details={"count": count, "deleted": deleted, "epoch": epoch},
                wait=wait,
                invalidated_sessions=status.invalidated_sessions + count,
                extra_changes={"session_epoch": epoch},
            )
        except REDIS_ERRORS as exc:  # the epoch is set; nodes pick it up on their next poll
            log.warning("session epoch %d set but not propagated: %s", epoch, exc)
            return None
        return result.status.version


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
