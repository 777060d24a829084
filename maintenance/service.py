"""``EnhancedMaintenanceModeService``: the one object every integration talks to.

Writes go to SQL by compare-and-set, then out over Redis with a fenced wait;
reads on hot paths come from the per-process ``StatusCache`` only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

from . import events
from .cache import StatusCache
from .domain import transitions
from .domain.classifier import MaintenanceOperationClassifier
from .domain.enable_request import EnableRequest
from .domain.history import EventPage
from .domain.messages import build_message
from .domain.modes import MaintenanceMode, OperationType
from .domain.operations import OperationRegistry
from .domain.policy import Decision, decide
from .domain.status import MaintenanceStatus, utcnow
from .domain.transitions import check_expected_version
from .domain.validation import (
    exact_version,
    validate_actor,
    validate_note,
    validate_wait,
)
from .errors import ConflictError, MaintenanceError, OperationBlocked, ValidationError
from .fencing import AckWaiter, ActivationResult, publish_fenced
from .job_flags import JobFlags
from .keys import Keys
from .live import read_counters
from .nodes import NodeInfo
from .notify.notifier import Notifier
from .record import RecordGuard
from .redisconn import REDIS_ERRORS, make_client
from .rehearsal_log import GateTimings
from .roles import RoleResolver, _bypass_user, bypass_context, user_label
from .settings import Settings
from .store.database import Database
from .store.eventlog import EventLog, MaintenanceEvent
from .store.state import StateStore

log = logging.getLogger("maintenance")
_BLOCK = Decision.BLOCK
FAIL_CLOSED_REASON = "changes are paused while the service cannot reach its control plane"
_UNFENCED = ("timeout", "redis-unavailable")  # worth a line in the event log


class EnhancedMaintenanceModeService:
    """Enable/disable maintenance, answer "is this blocked?", report status.

    Build one per process with ``maintenance.build_service()``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        db: Database,
        redis_url: str,
        kind: str = "app",
        register: bool = True,
        classifier: MaintenanceOperationClassifier | None = None,
        roles: RoleResolver | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis_url = redis_url
        self.keys = Keys(settings.redis_prefix)
        self.state = StateStore(db)
        self.events = EventLog(db)
        self.redis = make_client(redis_url, timeout=settings.redis_socket_timeout)
        #: The app's vocabulary of operation types (``Settings.operations``).
        self.operations: OperationRegistry = settings.operations
        self.classifier = classifier or MaintenanceOperationClassifier(
            settings.rules, operations=self.operations
        )
        self.roles = roles or RoleResolver(settings.admin_roles, settings.critical_roles)
        self.cache = StatusCache(
            redis_url=redis_url,
            keys=self.keys,
            state=self.state,
            kind=kind,
            register=register,
            revalidate_interval=settings.revalidate_interval,
            sql_check_interval=settings.sql_check_interval,
            heartbeat_interval=settings.heartbeat_interval,
            redis_timeout=settings.redis_socket_timeout,
        )
        # Which kinds of work this process knows: an enable checks the fleet agrees.
        self.cache.info["operations"] = self.operations.fingerprint()
        self.cache.add_listener(
            lambda status: events.emit(events.status_changed, self, status=status)
        )
        # Every write to SQL first asks whether the store is the fleet's system of record.
        self.record = RecordGuard(
            db,
            self.redis,
            self.keys,
            local_version=lambda: self.cache.status.version,
            max_age=settings.sql_check_interval,
        )
        db.write_guard = self.record
        self._fail_closed = settings.fail_closed
        self._waiter: AckWaiter | None = None
        self._waiter_lock = threading.Lock()
        from .attempts import AttemptRecorder

        self.attempts = AttemptRecorder(
            self.redis, self.keys, db, sample=settings.blocked_log_sample
        )
        self.notifier = Notifier(db, settings)
        #: Gate decision times while a rehearsal runs; the heartbeat writes them out.
        self.gate_timings = GateTimings()
        self.cache.heartbeat_hooks.append(self._flush_gate_timings)

    def _flush_gate_timings(self) -> None:
        self.gate_timings.flush(self.cache.client, self.keys, self.cache.node_id)

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> EnhancedMaintenanceModeService:
        """Load the status and start following changes (idempotent, fork-aware)."""
        self.cache.start()
        return self

    def close(self) -> None:
        """Stop following changes and leave the node registry."""
        self.cache.stop()
        self.attempts.close()
        self.notifier.stop_delivery()
        with self._waiter_lock:
            if self._waiter is not None:
                self._waiter.close()
                self._waiter = None

    @property
    def status(self) -> MaintenanceStatus:
        """The cached status (no network); starts the cache on first use."""
        cache = self.cache
        if not cache.started:
            cache.start()
        return cache.status

    # -- hot path --------------------------------------------------------------
    def failing_closed(self) -> bool:
        """True while the service fails closed: told to, and Redis and SQL are both down."""
        if not self._fail_closed:
            return False
        health = self.cache.health
        return not health.redis_ok and not health.sql_ok

    def fail_closed_status(self, status: MaintenanceStatus) -> MaintenanceStatus:
        """What ``status`` means while failing closed: the mutating work kinds blocked."""
        return status.with_changes(
            is_active=True,
            blocked_operations=self.operations.ordered(
                self.operations.default_blocked(MaintenanceMode.NORMAL)
            ),
            reason=status.reason or FAIL_CLOSED_REASON,
        )

    def decide(
        self,
        operation: OperationType | str,
        user: Any = None,
        *,
        continuation: bool = False,
    ) -> Decision:
        """ALLOW, BLOCK or WOULD_BLOCK (TEST mode) for ``operation`` by ``user`` now.

        Reads only the local cache. Who the caller is gets resolved only when
        the operation is in the blocked set, which keeps the common case cheap.
        """
        cache = self.cache
        if not cache.started:
            cache.start()
        status = cache.status
        if not status.is_active:
            if not self.failing_closed():
                return Decision.ALLOW
            status = self.fail_closed_status(status)
        op = self.parse_operation(operation)
        roles = self.roles
        bypass = _bypass_user.get()
        return decide(
            status,
            op,
            is_admin=lambda: bypass is not None or roles.is_admin(user),
            is_critical_admin=lambda: (
                roles.is_critical_admin(user) or roles.is_critical_admin(bypass)
            ),
            continuation=continuation,
        )

    def is_operation_blocked(
        self, operation: OperationType | str, user: Any = None, *, continuation: bool = False
    ) -> bool:
        """True when ``operation`` must be refused for ``user`` right now.

        Reads only this process's cache. ``user`` may be any user object or
        mapping (see ``RoleResolver``); inside ``bypass(admin)`` the admin counts.
        """
        cache = self.cache
        if cache.started and not cache.status.is_active and not self._fail_closed:
            return False
        return self.decide(operation, user, continuation=continuation) is _BLOCK

    def check_operation(
        self, operation: OperationType | str, user: Any = None, *, continuation: bool = False
    ) -> Decision:
        """Like ``decide`` but raises ``OperationBlocked`` instead of returning BLOCK."""
        decision = self.decide(operation, user, continuation=continuation)
        if decision is Decision.BLOCK:
            op = self.parse_operation(operation)
            status = self.cache.status
            raise OperationBlocked(
                op, status, status.retry_after(), self.get_maintenance_message(op)
            )
        return decision

    def parse_operation(self, operation: OperationType | str) -> OperationType:
        """The app's operation type named ``operation``; ``ValidationError`` listing the
        known ones when it is not one of them."""
        if type(operation) is OperationType and operation in self.operations:
            return operation
        try:
            return self.operations.parse(operation)
        except ValueError as exc:
            raise ValidationError(str(exc), field="operation") from None

    @contextmanager
    def bypass(self, user: Any) -> Iterator[Any]:
        """Run the block as admin ``user``: checks (and Celery publishes) get through."""
        with bypass_context(user, self.roles.is_admin) as who:
            yield who

    def declare_hook(self, name: str) -> None:
        """Say in this node's registry record that hook ``name`` (``http``, ``publish``,
        ``worker``) is installed; a rehearsal names the nodes that lack one."""
        self.cache.declare_hook(name)

    def is_admin(self, user: Any) -> bool:
        """Whether ``user`` is an administrator (pluggable via ``roles``)."""
        return self.roles.is_admin(user)

    # -- state changes ---------------------------------------------------------
    def enable_maintenance(
        self,
        reason: str,
        duration: str | int | float | timedelta | None = None,
        mode: MaintenanceMode | str = MaintenanceMode.NORMAL,
        enabled_by: str | None = None,
        blocked_operations: list[OperationType | str] | None = None,
        wait: float | None = None,
        *,
        expected_version: int | None = None,
        critical_admin_only: bool = False,
        block_login: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> ActivationResult:
        """Switch maintenance on (or change it while on) and propagate it fenced.

        Validates everything first (``ValidationError``), then ``enable``.
        """
        return self.enable(
            EnableRequest.validate(
                reason,
                duration,
                mode,
                enabled_by,
                blocked_operations,
                wait=wait,
                expected_version=expected_version,
                critical_admin_only=critical_admin_only,
                block_login=block_login,
                details=details,
                operations=self.operations,
            )
        )

    def enable(self, req: EnableRequest) -> ActivationResult:
        """Apply a checked enable request and propagate it fenced.

        Two administrators racing: the compare-and-set lets exactly one win; the
        other gets ``ConflictError`` and nothing of theirs is half-applied.
        Returns once every live node applied the new version, or after
        ``req.wait`` seconds with ``lagging_nodes`` listed.
        """
        req = req.with_defaults(block_login=self.settings.block_login)
        if req.operations is not self.operations:
            # Read elsewhere: its names must be this app's, its defaults this app's.
            for op in req.override or ():
                self.parse_operation(op)
            req = replace(req, operations=self.operations)
        self._check_same_vocabulary()
        self.record(fresh=True)
        current = self.state.load()
        check_expected_version(current, req.expected_version)
        new, event = transitions.enabled(current, req, utcnow())
        stored = self.state.compare_and_set(current.version, new, event)
        result = self._propagate(stored, req.wait)
        if req.mode is MaintenanceMode.TEST or result.propagation in _UNFENCED:
            self._record_propagation(result)
        log.info(
            "%s by %s (mode=%s, version=%s, propagation=%s)",
            event.kind,
            req.actor,
            req.mode.value,
            stored.version,
            result.propagation,
        )
        events.emit(events.maintenance_enabled, self, status=stored, actor=req.actor)
        return result

    def _check_same_vocabulary(self) -> None:
        """Refuse to enable from a process whose operation types are not the fleet's: its
        default blocked set would name kinds the fleet does not have (e.g. the plain
        ``maintenance`` CLI next to an app that declares its types in code)."""
        mine = self.operations.fingerprint()
        try:
            nodes = self.nodes()
        except REDIS_ERRORS:
            return  # the fenced publish says what Redis being down costs
        others = {
            n.node_id: n.info["operations"]
            for n in nodes.values()
            if n.info.get("operations") not in (None, mine)
        }
        if others:
            node, theirs = next(iter(sorted(others.items())))
            raise ValidationError(
                f"this process knows the operation types {mine or '(seed)'} but live node "
                f"{node} knows {theirs or '(seed)'}: every process must read the same "
                "declaration (use `flask maintenance`, or MAINTENANCE_OPERATIONS_FILE)",
                field="operations",
            )

    def disable_maintenance(
        self,
        disabled_by: str | None = None,
        *,
        requeue: bool = True,
        wait: float | None = None,
        expected_version: int | None = None,
        reason: str | None = None,
    ) -> ActivationResult:
        """Switch maintenance off, fenced; deferred/terminated jobs are requeued
        by the Celery side (``maintenance_disabled`` event) unless ``requeue`` is False."""
        actor = validate_actor(disabled_by, "disabled_by")
        reason = validate_note(reason)
        wait = validate_wait(wait)
        expected_version = exact_version(expected_version)
        self.record(fresh=True)
        current = self.state.load()
        check_expected_version(current, expected_version)
        new, event = transitions.disabled(current, actor, requeue=requeue, reason=reason)
        stored = self.state.compare_and_set(current.version, new, event)
        result = self._propagate(stored, wait)
        if result.propagation in _UNFENCED:
            self._record_propagation(result)
        if current.test_mode and current.activation_id:
            result = self._finish_rehearsal(result, current.activation_id)
        log.info("maintenance disabled by %s (version=%s)", actor, stored.version)
        events.emit(events.maintenance_disabled, self, status=stored, actor=actor, requeue=requeue)
        return result

    def update_status(
        self,
        actor: str,
        event_kind: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        wait: float | None = 0,
        attempts: int = 5,
        extra_changes: dict[str, Any] | None = None,
        expect: Callable[[MaintenanceStatus], bool] | None = None,
        **changes: Any,
    ) -> ActivationResult:
        """Apply field ``changes`` on top of the latest state (merged retry on conflict).

        For flags that compose with whatever else changed (login blocking,
        critical-admin-only, emergency phase, recovery done); not for enable/disable.
        ``extra_changes`` are merged into ``extra`` as it is at write time; when
        ``expect(current)`` is False nothing is written (``ConflictError``).
        """
        last: ConflictError | None = None
        self.record(fresh=True)
        for _ in range(attempts):
            current = self.state.load()
            if expect is not None and not expect(current):
                raise ConflictError(
                    "the maintenance state moved on", current_version=current.version
                )
            merged = dict(changes)
            if extra_changes:
                merged["extra"] = {**current.extra, **extra_changes}
            new = current.with_changes(**merged)
            event = MaintenanceEvent(
                kind=event_kind,
                actor=actor,
                reason=reason,
                activation_id=current.activation_id,
                details={
                    **(details or {}),
                    **{k: _jsonable(v) for k, v in changes.items()},
                    **(extra_changes or {}),
                },
            )
            try:
                stored = self.state.compare_and_set(current.version, new, event)
            except ConflictError as exc:
                last = exc
                continue
            return self._propagate(stored, wait)
        assert last is not None
        raise last

    def record_event(
        self,
        kind: str,
        actor: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        activation_id: str | None = None,
    ) -> None:
        """Append an entry to the event log (current activation unless given)."""
        self.events.append(
            MaintenanceEvent(
                kind=kind,
                actor=actor,
                reason=reason,
                details=dict(details or {}),
                activation_id=activation_id or self.status.activation_id,
            )
        )

    def _record_propagation(self, result: ActivationResult) -> None:
        try:
            self.record_event(
                "propagation",
                details={
                    "version": result.status.version,
                    "fenced": result.fenced,
                    "propagation": result.propagation,
                    "applied": len(result.applied_nodes),
                    "lagging": [str(n["node_id"]) for n in result.lagging_nodes],
                    "waited_ms": round(result.waited_seconds * 1000, 3),
                },
                activation_id=result.status.activation_id,
            )
        except MaintenanceError as exc:
            log.warning("propagation measurement not recorded: %s", exc)

    def _finish_rehearsal(self, result: ActivationResult, activation_id: str) -> ActivationResult:
        from .rehearsal import build_test_report
        from .reports import save_report

        try:
            body = build_test_report(self, activation_id)
            report_id = save_report(self, "test", body, activation_id=activation_id)
        except Exception:  # the rehearsal ended either way; say why the report is missing
            log.exception("rehearsal report for %s could not be written", activation_id)
            return result
        return replace(
            result, details={**result.details, "report_id": report_id, "verdict": body["verdict"]}
        )

    def _propagate(self, status: MaintenanceStatus, wait: float | None) -> ActivationResult:
        wait = self.settings.enable_wait if wait is None else wait
        cache = self.cache

        def local_apply(s: MaintenanceStatus) -> str | None:
            cache.apply(s)
            if cache.started and cache.register:
                try:
                    cache.registry.report_applied(cache.node_id, s.version)
                except REDIS_ERRORS:
                    return None
                return cache.node_id
            return None

        with self._waiter_lock:
            return publish_fenced(
                bus=cache.bus,
                registry=cache.registry,
                status=status,
                wait=wait,
                node_ttl=self.settings.node_ttl,
                waiter_factory=self._ack_waiter,
                local_apply=local_apply,
            )

    def _ack_waiter(self) -> AckWaiter:
        waiter = self._waiter
        if waiter is None or waiter.broken or waiter.pid != os.getpid():
            waiter = self._waiter = AckWaiter(self.redis, self.keys)
        return waiter

    def adopt_store(
        self,
        actor: str,
        reason: str | None = None,
        *,
        use: str = "fleet",
        wait: float | None = None,
    ) -> ActivationResult | None:
        """Make the fleet use this process's SQL store on purpose (a new or restored one);
        None when it already does. See ``maintenance.adoption``."""
        from .adoption import adopt_store

        return adopt_store(self, actor, reason, use=use, wait=wait)

    # -- reading -----------------------------------------------------------------
    def get_maintenance_status(self, *, live: bool = True) -> MaintenanceStatus:
        """The current status with health and, if ``live``, the live counters
        (running and deferred jobs, sessions, blocked attempts). Not for hot paths:
        the counters cost a Redis pipeline and a SQL count."""
        status = self.status
        health = self.cache.health
        reasons = [r for r in (self.record.problem(), health.reason) if r]
        changes: dict[str, Any] = {
            "degraded": bool(reasons),
            "degraded_reason": "; ".join(reasons) or None,
            "overdue": status.is_overdue(),
        }
        if live:
            self.attempts.flush_counts()  # this process's refusals count too
            counters = read_counters(
                self.redis, self.keys, self.db, status.activation_id, self.operations.names()
            )
            extra = dict(status.extra)
            extra["blocked_attempts"] = counters.blocked_attempts
            if status.test_mode:
                extra["would_block_attempts"] = counters.would_block_attempts
            changes.update(
                active_jobs_count=counters.active_jobs_count,
                deferred_jobs_count=counters.deferred_jobs_count,
                jobs_needing_action_count=counters.jobs_needing_action_count,
                invalidated_sessions=max(
                    status.invalidated_sessions, counters.invalidated_sessions
                ),
                extra=extra,
            )
            if counters.errors and not changes["degraded"]:
                changes["degraded"] = True
                changes["degraded_reason"] = "; ".join(counters.errors)
        return status.with_changes(**changes)

    def get_blocked_operations(self) -> list[OperationType]:
        """Operation types blocked right now for a regular user (empty when off or in TEST)."""
        status = self.status
        if not status.is_active or status.test_mode:
            return []
        return list(status.blocked_operations)

    def get_maintenance_message(self, operation: OperationType | str | None = None) -> str:
        """User-facing text: what is unavailable, why, and until when."""
        op = self.parse_operation(operation) if operation is not None else None
        return build_message(self.status, op, registry=self.operations)

    def history(self, limit: int = 50, **filters: Any) -> list[MaintenanceEvent]:
        """Event log, newest first."""
        if limit <= 0 or limit > 10_000:
            raise ValidationError("limit must be between 1 and 10000", field="limit")
        return self.events.history(limit, **filters)

    def history_page(self, limit: int = 50, offset: int = 0, **filters: Any) -> EventPage:
        """One page of the event log, newest first, with how many entries match the
        filters (``activation_id``, ``kinds``, ``before_id``) in all."""
        if limit <= 0 or limit > 10_000:
            raise ValidationError("limit must be between 1 and 10000", field="limit")
        if offset < 0:
            raise ValidationError("offset must not be negative", field="offset")
        return self.events.page(limit, offset=offset, **filters)

    def nodes(self) -> dict[str, NodeInfo]:
        """Live nodes and the version each applied."""
        return self.cache.registry.live_nodes(self.settings.node_ttl)

    # -- subscriptions ---------------------------------------------------------
    def subscribe_to_status_changes(self, callback: Callable[[MaintenanceStatus], None]) -> int:
        """Call ``callback(status)`` in this process on every change; returns an id."""
        if not callable(callback):
            raise ValidationError("callback must be callable", field="callback")
        self.start()
        return self.cache.add_listener(callback)

    def unsubscribe(self, subscription_id: int) -> bool:
        """Stop a subscription; False when the id is unknown."""
        return self.cache.remove_listener(subscription_id)

    # -- running jobs ----------------------------------------------------------
    def allow_operation_completion(self, job_id: str, ttl: int = 24 * 3600) -> None:
        """Let running job ``job_id`` finish whatever happens (exempt from emergency stops)."""
        if not job_id or not isinstance(job_id, str):
            raise ValidationError("job_id is required", field="job_id")
        JobFlags(self.redis, self.keys).allow_completion(job_id, ttl)

    def is_completion_allowed(self, job_id: str) -> bool:
        """Whether ``allow_operation_completion(job_id)`` was called."""
        return JobFlags(self.redis, self.keys).completion_allowed(job_id)

    def record_blocked_attempt(
        self,
        operation: OperationType | str,
        user: Any = None,
        *,
        endpoint: str | None = None,
        method: str | None = None,
        channel: str = "http",
        would_block: bool = False,
        unjudged: tuple[str, str | None] | None = None,
    ) -> None:
        """Count a refused (or TEST-mode would-be-refused) attempt; never raises.

        ``unjudged`` -- (problem, publisher origin) of a message no publish gate judged
        (``rehearsal_log.NO_HOOKS``/``NOT_JUDGED``), seen by a worker during a rehearsal.
        """
        from .attempts import BlockedAttempt

        status = self.cache.status
        try:
            op = self.parse_operation(operation)
        except ValidationError:
            log.warning("blocked attempt of unknown operation type %r not recorded", operation)
            return
        attempt = BlockedAttempt(
            operation=op,
            user=user_label(user),
            endpoint=endpoint,
            method=method,
            mode=status.mode.value,
            channel=channel,
            would_block=would_block,
            activation_id=status.activation_id,
            node=self.cache.node_id,
            unjudged=unjudged,
        )
        self.attempts.record(attempt)
        events.emit(
            events.operation_blocked,
            self,
            operation=op,
            user=attempt.user,
            channel=channel,
            would_block=would_block,
        )


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return value
