"""Is this SQL store the fleet's system of record? A pure judgement.

The SQL store carries an identity (a random id and its creation time, written
once when the store is created); Redis remembers the identity the fleet uses
and the highest state version the fleet has seen (the published version and
every node's acknowledged one). A store that is empty, another store, or the
same store at an older version (restored from a backup) must not take writes:
the fleet would silently fall back in time, or writes would never reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ADOPT_HINT = "to make the fleet use this store on purpose: `maintenance db adopt`"
CREATE_HINT = (
    "restore the store, or create a new one with `maintenance db upgrade` "
    "and then `maintenance db adopt`"
)


@dataclass(frozen=True)
class StoreIdentity:
    """Which SQL store this is: a random id and when the store was created."""

    id: str
    created_at: datetime

    def describe(self) -> str:
        """``store 1a2b3c4d, created 2026-12-03 20:57:30 UTC``."""
        return f"store {self.id[:8]}, created {self.created_at:%Y-%m-%d %H:%M:%S} UTC"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"id": self.id, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class SqlRecord:
    """What the SQL store holds: its schema version (0 = empty), identity and state version."""

    schema_version: int
    identity: StoreIdentity | None = None
    version: int | None = None

    @property
    def empty(self) -> bool:
        """No schema at all (a new database, or a SQLite file that was moved away)."""
        return self.schema_version == 0


@dataclass(frozen=True)
class FleetRecord:
    """What the fleet has seen: the store identity it uses and the highest version.

    ``version`` is None when the fleet has seen no state at all; ``reachable`` is
    False when Redis could not be asked (the process's own memory stands in).
    """

    identity: StoreIdentity | None = None
    version: int | None = None
    reachable: bool = True

    @property
    def exists(self) -> bool:
        """A running deployment is known: an identity, or any version beyond the initial one."""
        return self.identity is not None or (self.version or 0) > 0


@dataclass(frozen=True)
class Verdict:
    """Whether writes may go to the store; ``reason`` says why not; ``claim`` asks the
    caller to record the store's identity as the fleet's (none was recorded yet)."""

    ok: bool
    reason: str | None = None
    claim: bool = False


def judge(sql: SqlRecord, fleet: FleetRecord) -> Verdict:
    """May this process write to the store described by ``sql``?"""
    seen = fleet.version if fleet.version is not None else 0
    if sql.empty:
        if not fleet.exists:
            return Verdict(True)
        used = f" ({fleet.identity.describe()})" if fleet.identity else ""
        return Verdict(
            False,
            f"the SQL store is empty but the fleet has seen version {seen}{used}; "
            f"refusing to write: {CREATE_HINT}",
        )
    if sql.identity and fleet.identity and sql.identity.id != fleet.identity.id:
        return Verdict(
            False,
            f"this SQL store ({sql.identity.describe()}, at version {sql.version}) is not "
            f"the fleet's ({fleet.identity.describe()}, seen at version {seen}); "
            f"refusing to write; {ADOPT_HINT}",
        )
    if sql.version is not None and fleet.version is not None and sql.version < fleet.version:
        return Verdict(
            False,
            f"the SQL store is at version {sql.version} but the fleet has seen version "
            f"{fleet.version}: it was rolled back (restored from an older backup?); "
            f"refusing to write; {ADOPT_HINT}",
        )
    claim = fleet.reachable and fleet.identity is None and sql.identity is not None
    return Verdict(True, claim=claim)
