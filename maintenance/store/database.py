"""Engine creation with the settings each backend needs to be a safe system of record."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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


#: Called before every write transaction with ``fresh``: raises (``StoreMismatch``) when
#: the store must not be written to. See ``maintenance.record.RecordGuard``.
WriteGuard = Callable[[bool], None]


class Database:
    """An engine plus fork-safety and one error type for "SQL is unavailable".

    ``write_guard``, when set, is asked before every write transaction whether this
    store may be written to at all (it is the fleet's system of record).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = connect(url)
        self.write_guard: WriteGuard | None = None
        self._file = _sqlite_file(self.engine)
        self._opened: tuple[int, int] | None = None
        if self._file is not None:
            event.listen(self.engine, "connect", self._note_file)

    def _note_file(self, _dbapi_conn: Any, _record: Any) -> None:
        if self._opened is None and self._file is not None:
            self._opened = _file_id(self._file)

    def reopen_if_moved(self) -> bool:
        """SQLite: when the file at the URL's path is no longer the one this process's
        connections have open (moved away, replaced by a copy), drop them, so the next
        read finds what is at the path now. True when it did."""
        if self._file is None or self._opened is None:
            return False
        if _file_id(self._file) == self._opened:
            return False
        self._opened = None
        self.engine.dispose()
        return True

    def after_fork(self) -> None:
        """Drop pooled connections inherited from the parent process."""
        self.engine.dispose(close=False)

    @contextmanager
    def begin(self, *, fresh: bool = False, guarded: bool = True) -> Iterator[Connection]:
        """A write transaction; SQL errors of connectivity surface as ``StoreUnavailable``.

        The write guard is asked first (``fresh``: not from its cache; for the state
        row). ``guarded=False`` is for the one writer that may skip it: adoption.
        """
        guard = self.write_guard
        if guarded and guard is not None:
            guard(fresh)
        with _unavailable_as_error(), self._connection() as conn, conn.begin():
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection without an explicit transaction (reads)."""
        with _unavailable_as_error(), self._connection() as conn:
            yield conn

    def _connection(self) -> AbstractContextManager[Connection]:
        """A connection for one ``begin`` or ``connect``: from the pool, back after."""
        return self.engine.connect()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def pinned(self) -> Iterator[Database]:
        """This store on one connection held for the block: every ``begin`` and
        ``connect`` of what it yields reuses it -- no pool checkout and no liveness ping
        per transaction, for a run of many short transactions on one thread (a
        recovery's claims and marks). A connection lost meanwhile fails its transaction
        as usual, and the next one opens a new connection."""
        pinned = _Pinned(self)
        try:
            yield pinned
        finally:
            pinned.release()


class _Pinned(Database):
    """``Database.pinned``: the parent's engine and write guard, one connection."""

    def __init__(self, parent: Database) -> None:  # shares the parent's engine
        self.url, self.engine, self.write_guard = parent.url, parent.engine, parent.write_guard
        self._file, self._opened = None, None
        self._conn: Connection | None = None

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                conn.close()
            conn = self._conn = self.engine.connect()
        try:
            yield conn
        finally:
            if conn.in_transaction():
                conn.rollback()  # a read's implicit transaction ends with it

    def release(self) -> None:
        """Give the connection back to the pool."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _sqlite_file(engine: Engine) -> str | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return database


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino)


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
    if _missing_table(str(getattr(exc, "orig", None) or exc)):
        return True  # PostgreSQL: a database without the schema (dropped and recreated)
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if _missing_table(first):
        return f"{first} (run `maintenance db upgrade`)"
    return first


def _missing_table(text: str) -> bool:
    return "no such table" in text or ("relation" in text and "does not exist" in text)
