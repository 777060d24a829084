"""The transaction guard: a blocked modification never commits, not even half of it.

``guard_session(sessionmaker, service, models={User: "user_data_modification", ...})``
hooks SQLAlchemy ORM events of the app's sessions:

* ``before_flush`` judges every pending insert, update and delete by the
  operation type its model maps to; a blocked one rolls the whole transaction
  back (rows flushed earlier in it included) and raises ``OperationBlocked``;
* ``before_commit`` judges again what the transaction already flushed, so a
  transaction that began before maintenance and commits after it is refused too.

Admins (``service.bypass(admin)``), continuations of jobs that started before
maintenance (``job_writes``) and ``allow_writes`` get through; TEST mode only
records. Every refusal is counted as a blocked attempt on channel ``data`` and
logged as a ``data_modification_refused`` event.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from ..domain.modes import OperationType
from ..domain.policy import Decision
from ..errors import MaintenanceError, OperationBlocked, ValidationError
from ..roles import user_label
from ..service import EnhancedMaintenanceModeService
from . import context

log = logging.getLogger("maintenance.integrity")

ServiceSource = EnhancedMaintenanceModeService | Callable[[], EnhancedMaintenanceModeService]
#: A mapped class, a table name or a ``Table``.
ModelKey = Any

#: ``session.info`` keys (namespaced: the app may use ``info`` too).
_TOUCHED = "maintenance.integrity.touched"
_REFUSED = "maintenance.integrity.refused"
_WOULD_BLOCK = "maintenance.integrity.would_block"
_VERBS = ("INSERT", "UPDATE", "DELETE")


@dataclass
class Refusal:
    """What a refused transaction tried to change, kept until it is logged."""

    operation: OperationType
    tables: dict[str, Counter[str]]
    user: Any
    phase: str
    error: OperationBlocked
    logged: bool = field(default=False)


class _RollbackOnRefusal:
    """Mixed into a guarded sessionmaker's class: a refused ``commit`` rolls back at once.

    Inside ``commit()`` SQLAlchemy forbids a rollback from event hooks
    (``IllegalStateChangeError``), so the refusal surfaces here and is undone here.
    """

    def commit(self) -> None:
        try:
            super().commit()  # type: ignore[misc]
        except OperationBlocked:
            self.rollback()  # type: ignore[attr-defined]
            raise


class SessionGuard:
    """Judges the writes of guarded sessions against the maintenance status.

    ``models`` maps mapped classes, table names or ``Table`` objects to the
    operation type a write to them represents; writes to anything unmapped
    count as ``default`` (``None``: not guarded). ``user`` returns who is
    writing (e.g. the request's user); ``service`` may be a callable returning
    the service, for processes that build it lazily.
    """

    def __init__(
        self,
        service: ServiceSource,
        models: Mapping[ModelKey, OperationType | str],
        *,
        default: OperationType | str | None = None,
        user: Callable[[], Any] | None = None,
        name: str = "app",
    ) -> None:
        self._service_source = service
        self._by_class: dict[type, OperationType] = {}
        self._by_table: dict[str, OperationType] = {}
        for key, op in models.items():
            operation = _operation(op)
            if isinstance(key, type):
                self._by_class[key] = operation
            elif isinstance(key, Table):
                self._by_table[key.name] = operation
            else:
                self._by_table[str(key)] = operation
        self.default = _operation(default) if default is not None else None
        self.user = user
        self.name = name
        self._resolved: dict[type, tuple[OperationType, str] | None] = {}
        self._targets: list[Any] = []

    @property
    def service(self) -> EnhancedMaintenanceModeService:
        """The service consulted (resolved on first use when given as a callable)."""
        source = self._service_source
        if isinstance(source, EnhancedMaintenanceModeService):
            return source
        resolved = source()
        self._service_source = resolved
        return resolved

    # -- wiring ------------------------------------------------------------------
    def install(self, target: Any) -> SessionGuard:
        """Guard ``target``: a ``sessionmaker``, ``scoped_session``, ``Session`` subclass
        or session. Only sessionmakers roll back a refused ``commit()`` themselves;
        with the others the caller rolls back (a refused transaction cannot commit)."""
        if isinstance(target, scoped_session):
            target = target.session_factory
        if isinstance(target, sessionmaker) and not issubclass(target.class_, _RollbackOnRefusal):
            base = target.class_
            target.class_ = type(base.__name__, (_RollbackOnRefusal, base), {})
        event.listen(target, "before_flush", self._before_flush)
        event.listen(target, "before_commit", self._before_commit)
        event.listen(target, "after_transaction_end", self._after_transaction_end)
        event.listen(target, "after_soft_rollback", self._after_soft_rollback)
        self._targets.append(target)
        return self

    def remove(self) -> None:
        """Stop guarding every target this guard was installed on."""
        for target in self._targets:
            event.remove(target, "before_flush", self._before_flush)
            event.remove(target, "before_commit", self._before_commit)
            event.remove(target, "after_transaction_end", self._after_transaction_end)
            event.remove(target, "after_soft_rollback", self._after_soft_rollback)
        self._targets.clear()

    # -- what a write is ---------------------------------------------------------
    def operation_for(self, obj_or_class: Any) -> tuple[OperationType, str] | None:
        """``(operation type, table name)`` a write of this object counts as, or None."""
        cls = obj_or_class if isinstance(obj_or_class, type) else type(obj_or_class)
        if cls in self._resolved:
            return self._resolved[cls]
        table = _table_name(cls)
        op = next((self._by_class[k] for k in cls.__mro__ if k in self._by_class), None)
        if op is None:
            op = self._by_table.get(table, self.default)
        found = (op, table) if op is not None else None
        self._resolved[cls] = found
        return found

    def pending_changes(self, session: Session) -> dict[OperationType, dict[str, Counter[str]]]:
        """Rows ``session`` would write on its next flush, by operation type and table."""
        changes: dict[OperationType, dict[str, Counter[str]]] = {}

        def add(objs: Iterable[Any], verb: str) -> None:
            for obj in objs:
                found = self.operation_for(obj)
                if found is not None:
                    op, table = found
                    changes.setdefault(op, {}).setdefault(table, Counter())[verb] += 1

        add(session.new, "INSERT")
        add(session.deleted, "DELETE")
        add(
            (o for o in session.dirty if session.is_modified(o, include_collections=False)),
            "UPDATE",
        )
        return changes

    # -- events --------------------------------------------------------------------
    def _before_flush(self, session: Session, _flush_context: Any, _instances: Any) -> None:
        changes = self.pending_changes(session)
        if not changes:
            return
        refusal = self._judge(session, changes, "flush")
        if refusal is not None:
            self._refuse(session, refusal)
        touched = session.info.setdefault(_TOUCHED, {})
        for op, tables in changes.items():
            merged = touched.setdefault(op, {})
            for table, verbs in tables.items():
                merged.setdefault(table, Counter()).update(verbs)

    def _before_commit(self, session: Session) -> None:
        refused = session.info.get(_REFUSED)
        if refused is not None:
            # The caller caught a refusal and commits anyway: the transaction stays refused.
            raise refused.error
        touched = session.info.get(_TOUCHED)
        if touched:
            refusal = self._judge(session, touched, "commit")
            if refusal is not None:
                self._refuse(session, refusal)

    def _after_transaction_end(self, session: Session, transaction: Any) -> None:
        if transaction.parent is None:
            self._clear(session)

    def _after_soft_rollback(self, session: Session, previous_transaction: Any) -> None:
        if previous_transaction.parent is None:
            self._clear(session)

    def _clear(self, session: Session) -> None:
        refused: Refusal | None = session.info.pop(_REFUSED, None)
        session.info.pop(_TOUCHED, None)
        session.info.pop(_WOULD_BLOCK, None)
        if refused is not None and not refused.logged:
            self._log(refused)  # rolled back now: safe to write to the event log

    # -- decisions -------------------------------------------------------------------
    def _judge(
        self,
        session: Session,
        changes: Mapping[OperationType, Mapping[str, Counter[str]]],
        phase: str,
    ) -> Refusal | None:
        service = self.service
        status = service.status
        if not status.is_active and not service.settings.fail_closed:
            return None
        if context.escape_reason() is not None:
            return None
        user = self.user() if self.user is not None else None
        continuation = context.is_continuation(status)
        for op, tables in changes.items():
            decision = service.decide(op, user, continuation=continuation)
            if decision is Decision.ALLOW:
                continue
            if decision is Decision.WOULD_BLOCK:
                self._would_block(session, op, tables, user)
                continue
            message = service.get_maintenance_message(op)
            error = OperationBlocked(op, service.status, service.status.retry_after(), message)
            return Refusal(op, {t: Counter(v) for t, v in tables.items()}, user, phase, error)
        return None

    def _refuse(self, session: Session, refusal: Refusal) -> None:
        session.info[_REFUSED] = refusal
        try:
            # Outside commit() the rollback can happen right here; _clear logs it.
            session.rollback()
        except sa_exc.IllegalStateChangeError:
            # Inside commit(): _RollbackOnRefusal (or the caller) rolls back. Log now
            # unless that rollback will do it for us.
            if not isinstance(session, _RollbackOnRefusal):
                self._log(refusal)
        raise refusal.error

    def _would_block(
        self, session: Session, op: OperationType, tables: Mapping[str, Counter[str]], user: Any
    ) -> None:
        seen = session.info.setdefault(_WOULD_BLOCK, set())
        if op in seen:
            return
        seen.add(op)
        for table, verbs in tables.items():
            self.service.record_blocked_attempt(
                op, user, endpoint=table, method=_verb(verbs), channel="data", would_block=True
            )

    def _log(self, refusal: Refusal) -> None:
        refusal.logged = True
        service = self.service
        user = refusal.user
        for table, verbs in refusal.tables.items():
            service.record_blocked_attempt(
                refusal.operation, user, endpoint=table, method=_verb(verbs), channel="data"
            )
        job = context.current_job()
        try:
            service.record_event(
                "data_modification_refused",
                actor=user_label(user),
                reason=refusal.error.message,
                details={
                    "operation": refusal.operation.value,
                    "tables": {t: dict(v) for t, v in refusal.tables.items()},
                    "phase": refusal.phase,
                    "guard": self.name,
                    "job_id": job.job_id if job is not None else None,
                },
            )
        except MaintenanceError as exc:  # the refusal stands; only its log line is missing
            log.warning("data modification refusal not logged: %s", exc)
        log.info(
            "refused %s write to %s by %s (%s)",
            refusal.operation.value,
            ", ".join(refusal.tables),
            user_label(user) or "anonymous",
            refusal.phase,
        )


def guard_session(
    target: Any,
    service: ServiceSource,
    models: Mapping[ModelKey, OperationType | str],
    *,
    default: OperationType | str | None = None,
    user: Callable[[], Any] | None = None,
    name: str = "app",
) -> SessionGuard:
    """Guard the sessions ``target`` makes (see ``SessionGuard``); returns the guard."""
    guard = SessionGuard(service, models, default=default, user=user, name=name)
    return guard.install(target)


def _table_name(cls: type) -> str:
    mapper: Any = sa_inspect(cls, raiseerr=False)
    table = getattr(mapper, "local_table", None)
    return str(getattr(table, "name", None) or cls.__name__)


def _verb(verbs: Mapping[str, int]) -> str:
    return ",".join(v for v in _VERBS if verbs.get(v))


def _operation(value: OperationType | str) -> OperationType:
    """An operation name as declared (checked against the app's vocabulary when the
    service first decides on it: the service may not exist yet)."""
    if isinstance(value, OperationType):
        return value
    try:
        return OperationType(str(value).strip().lower().replace("-", "_"))
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
