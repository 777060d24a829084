"""The record guard: a process writes only to the store the fleet uses, at the newest state.

Before a write transaction (``Database.write_guard``) the guard compares what the
SQL store says (schema, identity, state version) with what the fleet has seen in
Redis (the store identity under ``Keys.store``, the published status version and
every node's acknowledged version) and this process's own memory. An empty store,
another store or an older one (a moved SQLite file, a dropped and recreated or
restored PostgreSQL database) is refused with ``StoreMismatch``: nothing is written.
The verdict is cached for ``max_age`` seconds; state-row writes ask afresh.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime

import redis
from sqlalchemy.exc import SQLAlchemyError

from .domain.record import FleetRecord, StoreIdentity, Verdict, judge
from .errors import MaintenanceError, StoreMismatch
from .keys import Keys
from .redisconn import REDIS_ERRORS, as_text
from .store.database import Database
from .store.identity import read_record

log = logging.getLogger("maintenance.record")

#: How old a "fresh" verdict may be, in seconds.
FRESH = 0.1


def identity_json(identity: StoreIdentity) -> str:
    """The form ``Keys.store`` holds."""
    return json.dumps(identity.to_dict(), sort_keys=True)


def _parse_identity(raw: bytes | str | None) -> StoreIdentity | None:
    if raw is None:
        return None
    try:
        data = json.loads(as_text(raw))
        created = datetime.fromisoformat(data["created_at"])
        return StoreIdentity(id=str(data["id"]), created_at=created)
    except (ValueError, KeyError, TypeError):
        log.warning("maintenance: unreadable store identity in Redis: %r", raw)
        return None


def _versions(values: list[bytes | str | None]) -> list[int]:
    found = []
    for value in values:
        if value is None:
            continue
        try:
            found.append(int(as_text(value)))
        except ValueError:
            continue
    return found


def read_fleet(client: redis.Redis, keys: Keys) -> FleetRecord:
    """What Redis says the fleet uses and has seen (raises a Redis error when unreachable)."""
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.store)
    pipe.get(keys.status_version)
    pipe.hvals(keys.node_applied)
    raw, published, applied = pipe.execute()
    versions = _versions([published, *applied])
    return FleetRecord(identity=_parse_identity(raw), version=max(versions) if versions else None)


def fleet_exists(client: redis.Redis, keys: Keys) -> bool | None:
    """Whether Redis knows a running deployment; None when Redis cannot be asked."""
    try:
        return read_fleet(client, keys).exists
    except REDIS_ERRORS:
        return None


class RecordGuard:
    """Decides, cheaply and cached, whether this process may write to its SQL store.

    Called as the database's write guard: ``guard(fresh)`` raises ``StoreMismatch``.
    ``local_version`` is the newest state version this process applied.
    """

    def __init__(
        self,
        db: Database,
        client: redis.Redis,
        keys: Keys,
        *,
        local_version: Callable[[], int],
        max_age: float = 5.0,
    ) -> None:
        self.db = db
        self.client = client
        self.keys = keys
        self.local_version = local_version
        self.max_age = max_age
        self._verdict: Verdict | None = None
        self._at = 0.0
        self._known: StoreIdentity | None = None
        self._said: str | None = None

    def fleet(self) -> FleetRecord:
        """The fleet's record, with this process's memory added (and standing in for
        Redis when it is unreachable)."""
        local = self.local_version()
        try:
            found = read_fleet(self.client, self.keys)
        except REDIS_ERRORS:
            return FleetRecord(identity=self._known, version=local or None, reachable=False)
        versions = [v for v in (found.version, local or None) if v is not None]
        return FleetRecord(identity=found.identity, version=max(versions) if versions else None)

    def check(self, max_age: float | None = None) -> Verdict:
        """The verdict, at most ``max_age`` seconds old (default: the guard's).

        Raises ``StoreUnavailable`` when SQL cannot be read.
        """
        age = self.max_age if max_age is None else max_age
        now = time.monotonic()
        cached = self._verdict
        if cached is not None and now - self._at < age:
            return cached
        if self.db.reopen_if_moved():
            log.warning("maintenance: the SQLite file was moved or replaced; reopened its path")
        # Redis first: a write landing between the two reads only makes SQL newer.
        fleet = self.fleet()
        sql = read_record(self.db)
        verdict = judge(sql, fleet)
        if verdict.claim and sql.identity is not None:
            verdict = self._claim(sql.identity)
        if verdict.ok and sql.identity is not None:
            self._known = sql.identity
        self._remember(verdict)
        return verdict

    def _claim(self, identity: StoreIdentity) -> Verdict:
        """Record the store as the fleet's (first check of a deployment); whoever wins,
        judge again against what Redis then holds."""
        try:
            if self.client.set(self.keys.store, identity_json(identity), nx=True):
                log.info("maintenance: the fleet now uses SQL %s", identity.describe())
                return Verdict(True)
        except REDIS_ERRORS:
            return Verdict(True)
        # Lost the claim to another process, which may have written since ``sql`` was
        # read: read Redis, then SQL again (the order ``check`` relies on).
        fleet = self.fleet()
        return judge(read_record(self.db), fleet)

    def _remember(self, verdict: Verdict) -> None:
        self._verdict, self._at = verdict, time.monotonic()
        if verdict.reason != self._said:
            if verdict.reason:
                log.warning("maintenance: %s", verdict.reason)
            elif self._said:
                log.warning("maintenance: the SQL store is the fleet's system of record again")
            self._said = verdict.reason

    def __call__(self, fresh: bool = False) -> None:
        """The write guard: raises ``StoreMismatch`` when this store must not be written.

        ``fresh``: judged within the last ``FRESH`` seconds (a state change checks
        before it reads the row and again as it writes it: one judgement serves both).
        """
        verdict = self.check(FRESH if fresh else None)
        if not verdict.ok:
            raise StoreMismatch(verdict.reason or "the SQL store is not the fleet's")

    def problem(self) -> str | None:
        """Why writes are refused (for the status), or None; never raises."""
        try:
            return self.check().reason
        except (MaintenanceError, SQLAlchemyError):
            return None  # SQL down: the status says so on its own

    def forget(self) -> None:
        """Drop the cached verdict and memory (after an adoption)."""
        self._verdict = None
        self._known = None
