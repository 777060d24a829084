"""The SQL system of record: schema, migrations, state row, event log and records."""

from .database import Database, connect
from .eventlog import EventLog, MaintenanceEvent
from .migrations import SCHEMA_VERSION, current_schema_version, upgrade
from .state import StateStore

__all__ = [
    "SCHEMA_VERSION",
    "Database",
    "EventLog",
    "MaintenanceEvent",
    "StateStore",
    "connect",
    "current_schema_version",
    "upgrade",
]
