"""Table definitions (SQLAlchemy Core) for every record the control plane keeps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend: SQLite hands back naive values
    (everything stored here is UTC), PostgreSQL aware ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


metadata = MetaData()

schema_version = Table(
    "maintenance_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

#: One row (id=1): which store this is, written once when the store is created; the
#: fleet remembers it in Redis and refuses a store it does not know (``maintenance.record``).
store_identity = Table(
    "maintenance_store",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

#: One row (id=1): the versioned maintenance state, changed only by compare-and-set.
state = Table(
    "maintenance_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("status_json", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

#: Append-only log of everything that happened, with who and why.
events = Table(
    "maintenance_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False, index=True),
    Column("kind", String(64), nullable=False, index=True),
    Column("actor", String(255)),
    Column("reason", Text),
    Column("version", Integer),
    Column("activation_id", String(64), index=True),
    Column("details_json", Text, nullable=False, default="{}"),
)

#: Jobs the control plane holds: deferred at the worker, terminated in an emergency.
jobs = Table(
    "maintenance_jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("original_id", String(255), nullable=False, unique=True),
    Column("task_name", String(255), nullable=False),
    Column("operation", String(64)),
    Column("args_json", Text, nullable=False, default="[]"),
    Column("kwargs_json", Text, nullable=False, default="{}"),
    Column("options_json", Text, nullable=False, default="{}"),
    Column("queue", String(255)),
    Column("state", String(32), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("reason", Text),
    Column("outcome", String(32)),
    Column("worker", String(255)),
    Column("rerun_safe", Boolean, nullable=False, default=True),
    Column("requeued_id", String(255)),
    Column("activation_id", String(64), index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

#: Sampled persistent log of blocked (and TEST-mode would-be-blocked) attempts.
blocked_attempts = Table(
    "maintenance_blocked_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("user", String(255)),
    Column("operation", String(64), nullable=False),
    Column("endpoint", String(255)),
    Column("method", String(16)),
    Column("mode", String(16)),
    Column("channel", String(16), nullable=False, default="http"),
    Column("would_block", Boolean, nullable=False, default=False),
    Column("activation_id", String(64)),
    Index("ix_blocked_activation_op", "activation_id", "operation"),
)

#: Scheduled maintenance windows, started and ended by the beat check.
windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("start_at", UTCDateTime(), nullable=False),
    Column("end_at", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("created_by", String(255)),
    Column("state", String(16), nullable=False, index=True),
    Column("activation_id", String(64)),
)

#: Stored reports (emergency, test-mode validation), as JSON.
reports = Table(
    "maintenance_reports",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("activation_id", String(64), index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("body_json", Text, nullable=False),
)

#: The notification outbox: one row per (event, webhook endpoint), written in the
#: transaction of the event it announces, delivered at least once (see ``maintenance.notify``).
notifications = Table(
    "maintenance_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("event_id", Integer, index=True),
    Column("type", String(64), nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("endpoint_label", String(255), nullable=False),
    Column("payload_json", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_token", String(64)),
    Column("lease_until", UTCDateTime()),
    Column("last_attempt_at", UTCDateTime()),
    Column("failing_since", UTCDateTime()),
    Column("last_error", Text),
    Column("delivered_at", UTCDateTime()),
    Index("ix_notifications_due", "state", "next_attempt_at"),
    Index("ix_notifications_endpoint", "endpoint", "state"),
)
