"""SQL access to ``maintenance_jobs``: jobs held back by maintenance and their requeue.

A record is written once per original task id (deferred at a worker, or
terminated in an emergency) and leaves its requeueable state only through a
conditional ``UPDATE ... WHERE state IN (...)``, so concurrent recoveries on
any number of threads, processes or nodes republish each job exactly once.

A deferred job is requeued under its own id (``requeued_id == original_id``); held
back again in a later window, that same message re-arms its record (one conditional
``UPDATE``), so it is recorded and requeued again exactly once per window.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    String,
    Text,
    any_,
    bindparam,
    case,
    cast,
    column,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from ..domain.status import utcnow
from . import schema
from .database import Database

#: Kinds of record: held back before it started, or stopped while running.
KIND_DEFERRED = "deferred"
KIND_TERMINATED = "terminated"

#: States. A record starts in the state named like its kind.
DEFERRED = "deferred"
TERMINATED = "terminated"
REQUEUEING = "requeueing"  # claimed by one recovery, being republished
REQUEUED = "requeued"  # republished under ``requeued_id``
DISCARDED = "discarded"  # an operator decided it must not run again

#: States a recovery may claim (and the state a released claim returns to, per kind).
REQUEUEABLE: tuple[str, ...] = (DEFERRED, TERMINATED)
STATES: tuple[str, ...] = (DEFERRED, TERMINATED, REQUEUEING, REQUEUED, DISCARDED)
_HOME_STATE = {KIND_DEFERRED: DEFERRED, KIND_TERMINATED: TERMINATED}


@dataclass(frozen=True)
class JobRecord:
    """One job the control plane holds, with everything needed to publish it again.

    ``options`` are Celery publish options (``queue``, ``link``, ``chain``,
    ``chord``, ``eta``, ``priority``, ``group_id``...) as JSON-ready values.
    """

    original_id: str
    task_name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    kind: str = KIND_DEFERRED
    state: str = DEFERRED
    operation: str | None = None
    reason: str | None = None
    outcome: str | None = None
    worker: str | None = None
    rerun_safe: bool = True
    requeued_id: str | None = None
    activation_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (CLI ``--json``, status API)."""
        return {
            "id": self.id,
            "original_id": self.original_id,
            "task_name": self.task_name,
            "operation": self.operation,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
            "queue": self.queue,
            "kind": self.kind,
            "state": self.state,
            "reason": self.reason,
            "outcome": self.outcome,
            "worker": self.worker,
            "rerun_safe": self.rerun_safe,
            "requeued_id": self.requeued_id,
            "activation_id": self.activation_id,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


def _dumps(value: Any) -> tuple[str, bool]:
    """JSON text of ``value`` and whether it round-trips (else a repr is kept)."""
    try:
        return json.dumps(value, sort_keys=True), True
    except (TypeError, ValueError):
        return json.dumps(repr(value)), False


def _from_row(row: Any) -> JobRecord:
    return JobRecord(
        id=row.id,
        original_id=row.original_id,
        task_name=row.task_name,
        operation=row.operation,
        args=json.loads(row.args_json or "[]"),
        kwargs=json.loads(row.kwargs_json or "{}"),
        options=json.loads(row.options_json or "{}"),
        queue=row.queue,
        state=row.state,
        kind=row.kind,
        reason=row.reason,
        outcome=row.outcome,
        worker=row.worker,
        rerun_safe=bool(row.rerun_safe),
        requeued_id=row.requeued_id,
        activation_id=row.activation_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _insert_ignoring_duplicates(conn: Connection, values: dict[str, Any]) -> bool:
    table = schema.jobs
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert_: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # RETURNING tells whether this statement wrote the row; rowcount of
        # ON CONFLICT DO NOTHING is not reliable across drivers.
        stmt = (
            insert_(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["original_id"])
            .returning(table.c.id)
        )
        return conn.execute(stmt).first() is not None
    # Other backends: look first (the unique constraint still guards the race).
    exists = conn.execute(
        select(table.c.id).where(table.c.original_id == values["original_id"])
    ).first()
    if exists is not None:
        return False
    conn.execute(insert(table).values(**values))
    return True


def _row_values(job: JobRecord, now: datetime) -> dict[str, Any]:
    """The column values of ``job``'s row, written at ``now`` (``rerun_safe`` cleared for
    args, kwargs or options that are not JSON)."""
    args_json, ok_args = _dumps(list(job.args))
    kwargs_json, ok_kwargs = _dumps(dict(job.kwargs))
    options_json, ok_options = _dumps(dict(job.options))
    faithful = ok_args and ok_kwargs and ok_options
    return {
        "original_id": job.original_id,
        "task_name": job.task_name,
        "operation": job.operation,
        "args_json": args_json,
        "kwargs_json": kwargs_json,
        "options_json": options_json,
        "queue": job.queue,
        "state": job.state,
        "kind": job.kind,
        "reason": job.reason,
        "outcome": job.outcome,
        "worker": job.worker,
        "rerun_safe": job.rerun_safe and faithful,
        "requeued_id": job.requeued_id,
        "activation_id": job.activation_id,
        "created_at": job.created_at or now,
        "updated_at": now,
    }


#: The columns ``record_many`` writes (``id`` comes from the sequence, in row order).
_COLUMN_NAMES = tuple(c.name for c in schema.jobs.c if c.name != "id")


def _field(column: Any) -> Any:
    """The recordset field type for ``column``: text for strings, so a value too long for
    its ``VARCHAR(n)`` fails the insert as a plain ``INSERT`` would (a cast to
    ``VARCHAR(n)`` would cut it short silently)."""
    return Text() if isinstance(column.type, String) else column.type


#: The recordset field carrying each row's position in the batch.
_POSITION = "position"


@functools.cache
def _recordset_insert() -> Any:
    """PostgreSQL: ``INSERT ... SELECT FROM json_to_recordset(:rows) ORDER BY position ON
    CONFLICT DO NOTHING RETURNING original_id``. One short statement and one JSON
    parameter whatever the batch size: its text and the driver's conversion of it are
    cached (a multi-row ``VALUES`` list of 500 rows is 8,000 placeholders parsed on every
    batch), and the rows are encoded by ``json.dumps`` in C (one text array per column
    was quoted element by element by the driver, in Python). Rows are inserted, and take
    their ids, in the batch's order (built once)."""
    table = schema.jobs
    fields = [column(_POSITION, Integer())]
    fields += [column(name, _field(table.c[name])) for name in _COLUMN_NAMES]
    source = (
        func.json_to_recordset(cast(bindparam("rows", type_=Text()), postgresql.JSON()))
        .table_valued(*fields)
        .render_derived(with_types=True)
    )
    rows = select(*[source.c[name] for name in _COLUMN_NAMES]).order_by(source.c[_POSITION])
    return (
        postgresql.insert(table)
        .from_select(list(_COLUMN_NAMES), rows)
        .on_conflict_do_nothing(index_elements=["original_id"])
        .returning(table.c.original_id)
    )


def _recordset(rows: Sequence[dict[str, Any]]) -> str:
    """``rows`` as the JSON ``_recordset_insert`` reads (timestamps in ISO 8601)."""
    return json.dumps(
        [{_POSITION: n, **values} for n, values in enumerate(rows)],
        default=_json_value,
        separators=(",", ":"),
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not a column value: {type(value).__name__}")


def _record_many_in(conn: Connection, jobs: Sequence[JobRecord]) -> list[bool]:
    """``record_many`` inside an existing transaction: the new rows with one
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for all of them, in ``jobs``' order,
    so their ids follow it (PostgreSQL: one JSON recordset, ``_recordset_insert``; SQLite:
    SQLAlchemy's "insertmanyvalues" multi-row statements); a job whose row exists is
    re-armed as ``record`` would."""
    now = utcnow()
    rows = [_row_values(job, now) for job in jobs]
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite") or not conn.dialect.insert_executemany_returning:
        # Other backends: one job at a time, as ``record_in``.
        return [_insert_ignoring_duplicates(conn, v) or _rearm(conn, v) for v in rows]
    first: dict[str, int] = {}
    for n, values in enumerate(rows):
        first.setdefault(values["original_id"], n)
    unique = [rows[n] for n in first.values()]  # first occurrences, in order
    if dialect == "postgresql":
        recordset = {"rows": _recordset(unique)}
        written = {row.original_id for row in conn.execute(_recordset_insert(), recordset)}
    else:
        stmt = (
            sqlite.insert(schema.jobs)
            .on_conflict_do_nothing(index_elements=["original_id"])
            .returning(schema.jobs.c.original_id)
        )
        written = {row.original_id for row in conn.execute(stmt, unique)}
    stored: list[bool] = []
    for n, values in enumerate(rows):
        original_id = values["original_id"]
        if first[original_id] != n:
            stored.append(False)  # a second message of the same id: never a second record
        else:
            stored.append(original_id in written or _rearm(conn, values))
    return stored


def _rearm(conn: Connection, values: dict[str, Any]) -> bool:
    """The record of a job requeued under its own id, held back again: back in the state
    ``values`` name, with the new window's details (one writer wins). Also from
    ``requeueing``: a message that reached a worker was published, whatever its
    recovery had time to mark."""
    table = schema.jobs
    fresh = {k: v for k, v in values.items() if k not in ("original_id", "created_at")}
    result = conn.execute(
        update(table)
        .where(
            table.c.original_id == values["original_id"],
            table.c.requeued_id == values["original_id"],
            table.c.state.in_((REQUEUEING, REQUEUED)),
        )
        .values(**fresh)
    )
    return result.rowcount == 1


class JobStore:
    """Record, list and move held-back jobs through their states."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing ---------------------------------------------------------------
    def record(self, job: JobRecord) -> bool:
        """Store ``job`` unless a record with its ``original_id`` exists (one that was
        requeued under that same id is re-armed instead: the job was held back again).

        True when this call wrote it. A redelivered message, or a second
        worker seeing the same message, never creates a second record. Args,
        kwargs or options that are not JSON are kept as their ``repr`` and
        the record is marked ``rerun_safe=False`` (a recovery will not guess).
        """
        with self.db.begin() as conn:
            return self.record_in(conn, job)

    @staticmethod
    def record_in(conn: Connection, job: JobRecord) -> bool:
        """``record`` inside an existing transaction (many jobs, or a job and its events)."""
        values = _row_values(job, utcnow())
        return _insert_ignoring_duplicates(conn, values) or _rearm(conn, values)

    def record_many(self, jobs: Sequence[JobRecord]) -> list[bool]:
        """``record`` for every job of ``jobs`` in one transaction, with the same
        once-per-original-id rule; per job, whether this call wrote it (a second job of
        the same id in ``jobs`` is not written, as a second ``record`` would not be).

        Raises what the store raises, and then wrote none of them.
        """
        if not jobs:
            return []
        with self.db.begin() as conn:
            return _record_many_in(conn, jobs)

    def transition(
        self,
        record_id: int,
        from_states: Iterable[str],
        to_state: str,
        **values: Any,
    ) -> bool:
        """Move one record to ``to_state`` only if it is in one of ``from_states``.

        True when this call made the change; False when someone else already
        moved it (the basis of exactly-once requeue).
        """
        table = schema.jobs
        with self.db.begin() as conn:
            result = conn.execute(
                update(table)
                .where(table.c.id == record_id, table.c.state.in_(tuple(from_states)))
                .values(state=to_state, updated_at=utcnow(), **values)
            )
            return result.rowcount == 1

    def claim_for_requeue(self, record: JobRecord, new_id: str) -> bool:
        """Claim a requeueable record for one recovery, reserving its new task id."""
        with self.db.begin() as conn:
            return _claim_one(conn, _id(record), new_id)

    def claim_batch(self, records: Iterable[JobRecord], new_ids: Mapping[int, str]) -> set[int]:
        """Claim ``records`` for a requeue (``new_ids``: record id -> reserved task id):
        the ids of those still requeueable, now ``requeueing`` (the others were taken by
        another recovery, or are no longer requeueable). One conditional ``UPDATE ...
        RETURNING`` whose ``CASE`` names only the records reserving an id other than
        their own (a deferred job keeps its id: the ``ELSE``), so a batch of deferred
        jobs claims with a plain ``WHERE id IN (...)``. Backends without ``UPDATE ...
        RETURNING`` claim one record per statement."""
        records = list(records)
        if not records:
            return set()
        table = schema.jobs
        with self.db.begin() as conn:
            if not conn.dialect.update_returning:
                return {_id(r) for r in records if _claim_one(conn, _id(r), new_ids[_id(r)])}
            other = {_id(r): new_ids[_id(r)] for r in records if new_ids[_id(r)] != r.original_id}
            reserved: Any = (
                case(other, value=table.c.id, else_=table.c.original_id)
                if other
                else table.c.original_id
            )
            rows = conn.execute(
                update(table)
                .where(
                    _id_in(conn, [_id(r) for r in records]),
                    table.c.state.in_(REQUEUEABLE),
                    table.c.rerun_safe.is_(True),
                )
                .values(state=REQUEUEING, requeued_id=reserved, updated_at=utcnow())
                .returning(table.c.id)
            ).all()
        return {int(row.id) for row in rows}

    def mark_requeued_many(self, records: Iterable[JobRecord]) -> int:
        """The claimed ``records`` were republished: one statement; how many it moved."""
        ids = tuple(_id(r) for r in records)
        if not ids:
            return 0
        table = schema.jobs
        with self.db.begin() as conn:
            result = conn.execute(
                update(table)
                .where(_id_in(conn, ids), table.c.state == REQUEUEING)
                .values(state=REQUEUED, updated_at=utcnow())
            )
            return int(result.rowcount)

    def stale_claims(self, older_than: float) -> list[JobRecord]:
        """Records claimed by a recovery that never finished them (it died between its
        claim and marking the job requeued), claimed at least ``older_than`` seconds ago."""
        from datetime import timedelta

        table = schema.jobs
        cutoff = utcnow() - timedelta(seconds=older_than)
        query = (
            select(table)
            .where(table.c.state == REQUEUEING, table.c.updated_at < cutoff)
            .order_by(table.c.id.asc())
        )
        with self.db.connect() as conn:
            return [_from_row(row) for row in conn.execute(query).all()]

    def retake_claim(self, record: JobRecord) -> bool:
        """Take over a stale claim (one taker wins: the claim time must not have moved)."""
        table = schema.jobs
        with self.db.begin() as conn:
            result = conn.execute(
                update(table)
                .where(
                    table.c.id == _id(record),
                    table.c.state == REQUEUEING,
                    table.c.updated_at == record.updated_at,
                )
                .values(updated_at=utcnow())
            )
            return result.rowcount == 1

    def mark_requeued(self, record: JobRecord) -> bool:
        """The claimed record was republished."""
        return self.transition(_id(record), (REQUEUEING,), REQUEUED)

    def release_claim(self, record: JobRecord, outcome: str | None = None) -> bool:
        """Republishing failed: put the record back where a later recovery finds it."""
        home = _HOME_STATE.get(record.kind, DEFERRED)
        extra: dict[str, Any] = {"requeued_id": None}
        if outcome is not None:
            extra["outcome"] = outcome
        return self.transition(_id(record), (REQUEUEING,), home, **extra)

    @staticmethod
    def set_outcome_in(
        conn: Connection, original_ids: Iterable[str], outcome: str, *, state: str
    ) -> int:
        """Inside an existing transaction: records of ``original_ids`` still in ``state``
        get ``outcome`` (a SIGTERMed job that had to be SIGKILLed); how many did."""
        table = schema.jobs
        result = conn.execute(
            update(table)
            .where(table.c.original_id.in_(tuple(original_ids)), table.c.state == state)
            .values(outcome=outcome, updated_at=utcnow())
        )
        return int(result.rowcount)

    def discard_stopped(self, original_id: str, *, outcome: str, reason: str) -> bool:
        """A job recorded as stopped with ``outcome`` finished its work after all: it must
        not run again. True when this call discarded it."""
        table = schema.jobs
        with self.db.begin() as conn:
            result = conn.execute(
                update(table)
                .where(
                    table.c.original_id == original_id,
                    table.c.state == TERMINATED,
                    table.c.outcome == outcome,
                )
                .values(state=DISCARDED, outcome=reason, updated_at=utcnow())
            )
            return result.rowcount == 1

    def discard(self, record: JobRecord, reason: str | None = None) -> bool:
        """An operator decided the job must not run again."""
        extra = {"outcome": reason} if reason else {}
        return self.transition(_id(record), REQUEUEABLE, DISCARDED, **extra)

    # -- reading ---------------------------------------------------------------
    def get(self, original_id: str) -> JobRecord | None:
        """The record of ``original_id``, if any."""
        with self.db.connect() as conn:
            row = conn.execute(
                select(schema.jobs).where(schema.jobs.c.original_id == original_id)
            ).first()
        return _from_row(row) if row is not None else None

    def find(
        self,
        state: str | Iterable[str] | None = None,
        *,
        kind: str | None = None,
        activation_id: str | None = None,
        limit: int | None = 1000,
        newest_first: bool = False,
    ) -> list[JobRecord]:
        """Records, oldest first (the order they were held back in) unless told otherwise."""
        table = schema.jobs
        query = select(table)
        if state is not None:
            states = (state,) if isinstance(state, str) else tuple(state)
            query = query.where(table.c.state.in_(states))
        if kind is not None:
            query = query.where(table.c.kind == kind)
        if activation_id is not None:
            query = query.where(table.c.activation_id == activation_id)
        query = query.order_by(table.c.id.desc() if newest_first else table.c.id.asc())
        if limit is not None:
            query = query.limit(limit)
        with self.db.connect() as conn:
            return [_from_row(row) for row in conn.execute(query).all()]

    def requeueable(self, limit: int | None = None) -> list[JobRecord]:
        """Rerun-safe records a recovery should republish, in their original order."""
        table = schema.jobs
        query = (
            select(table)
            .where(table.c.state.in_(REQUEUEABLE), table.c.rerun_safe.is_(True))
            .order_by(table.c.id.asc())
        )
        if limit is not None:
            query = query.limit(limit)
        with self.db.connect() as conn:
            return [_from_row(row) for row in conn.execute(query).all()]

    def needing_action(self, limit: int | None = 50) -> list[JobRecord]:
        """Stopped jobs not safe to rerun that nobody has dealt with (never requeued; an
        operator reruns or discards them), newest first."""
        table = schema.jobs
        query = (
            select(table).where(*_needing_action(table)).order_by(table.c.id.desc()).limit(limit)
        )
        with self.db.connect() as conn:
            return [_from_row(row) for row in conn.execute(query).all()]

    def count_needing_action(self) -> int:
        """How many ``needing_action`` records there are."""
        table = schema.jobs
        query = select(func.count()).select_from(table).where(*_needing_action(table))
        with self.db.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def count(self, state: str) -> int:
        """Number of records in ``state``."""
        table = schema.jobs
        query = select(func.count()).select_from(table).where(table.c.state == state)
        with self.db.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def counts(self) -> dict[str, int]:
        """Number of records per state."""
        table = schema.jobs
        with self.db.connect() as conn:
            rows = conn.execute(select(table.c.state, func.count()).group_by(table.c.state)).all()
        return {state: int(n) for state, n in rows}


def _claim_one(conn: Connection, record_id: int, new_id: str) -> bool:
    table = schema.jobs
    result = conn.execute(
        update(table)
        .where(
            table.c.id == record_id,
            table.c.state.in_(REQUEUEABLE),
            table.c.rerun_safe.is_(True),
        )
        .values(state=REQUEUEING, requeued_id=new_id, updated_at=utcnow())
    )
    return result.rowcount == 1


def _needing_action(table: Any) -> tuple[Any, ...]:
    return (
        table.c.kind == KIND_TERMINATED,
        table.c.state == TERMINATED,
        table.c.rerun_safe.is_(False),
    )


def _id_in(conn: Connection, ids: Sequence[int]) -> ColumnElement[bool]:
    """``id IN (ids)``; on PostgreSQL ``id = ANY(array)``: one parameter, so a batch of
    thousands of ids costs no per-id placeholder to render, convert and parse."""
    if conn.dialect.name == "postgresql":
        return schema.jobs.c.id == any_(
            bindparam("ids", list(ids), type_=postgresql.ARRAY(Integer))
        )
    return schema.jobs.c.id.in_(tuple(ids))


def _id(record: JobRecord) -> int:
    if record.id is None:
        raise ValueError(f"job record {record.original_id} has not been stored")
    return record.id
