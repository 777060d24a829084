"""Engine creation with the settings each backend needs to be a safe system of record."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool, QueuePool

from ..errors import StoreUnavailable


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets readers (every node's poll) run beside the one writer; NORMAL
    # sync is durable across process crashes, which is what we need here.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


def connect(url: str) -> Engine:
    """An engine for ``url`` (SQLite or PostgreSQL), tuned for this workload."""
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        # A small pool of file connections (fork safety: Database.after_fork
        # drops the parent's connections in the child).
        engine = create_engine(
            url,
            poolclass=NullPool if memory else QueuePool,
            connect_args={"timeout": 15, "check_same_thread": False},
            **({} if memory else {"pool_size": 5, "max_overflow": 10}),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=5,
        connect_args={"connect_timeout": 3},
    )


class Database:
    """An engine plus fork-safety and one error type for "SQL is unavailable"."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = connect(url)

    def after_fork(self) -> None:
        """Drop pooled connections inherited from the parent process."""
        self.engine.dispose(close=False)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction; SQL errors of connectivity surface as ``StoreUnavailable``."""
        with _unavailable_as_error(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection without an explicit transaction (reads)."""
        with _unavailable_as_error(), self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


@contextmanager
def _unavailable_as_error() -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        if _is_connectivity(exc):
            raise StoreUnavailable(f"SQL store unavailable: {_short(exc)}") from exc
        raise


def _is_connectivity(exc: SQLAlchemyError) -> bool:
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, OperationalError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if "no such table" in first or ("relation" in first and "does not exist" in first):
        return f"{first} (run `maintenance db upgrade`)"
    return first
