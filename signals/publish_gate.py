"""The publish gate: ``app.send_task`` wrapped so a blocked publish never reaches the broker.

Every publish path -- ``delay``, ``apply_async``, ``send_task`` by name (also of
tasks not registered here), signatures, canvas, beat, ``celery call`` -- ends
in ``Celery.send_task`` (``app/base.py``), the only caller of
``amqp.send_task_message`` besides the recovery requeue (``workers.republish``: the
control plane's own publishes, stamped through ``PublishGate.internal``, never
judged). ``Task.apply_async`` looks the method up on the
app instance (``app.send_task(...)``), so wrapping it on the instance gates
exactly the apps ``install`` was called for. ``task_always_eager`` never
reaches ``send_task`` and is not gated (nothing is published).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from time import perf_counter_ns
from typing import Any

from celery.utils.functional import regen

from maintenance import Decision, EnhancedMaintenanceModeService, MaintenanceStatus, OperationType
from maintenance.job_registry import QUEUED, ActiveJob, JobRegistry
from maintenance.redisconn import REDIS_ERRORS
from maintenance.roles import BYPASS_USER, current_bypass_user, user_label
from workers.binding import Binding
from workers.headers import PUBLISHED_NS
from workers.internal_publish import INTERNAL_PUBLISH
from workers.operations import OPTION, registered_task, resolve_operation

from . import admission, canvas, stamping
from .errors import PublishRefused

log = logging.getLogger("maintenance.celery")
_MEMO_LIMIT = 4096


def _call(positional: tuple[Any, ...], options: dict[str, Any]) -> tuple[Any, Any, Any, tuple]:
    """``send_task``'s ``name``, ``args``, ``kwargs`` and further positional arguments,
    whether passed by position or by keyword (those taken out of ``options``)."""
    count = len(positional)
    if count >= 3:
        return positional[0], positional[1], positional[2], positional[3:]
    if not count and "name" not in options:
        raise TypeError("send_task() missing 1 required positional argument: 'name'")
    name = positional[0] if count else options.pop("name")
    args = positional[1] if count > 1 else options.pop("args", None)
    return name, args, options.pop("kwargs", None), ()


class PublishGate:
    """Judges each publish of one app; refuses blocked ones with ``PublishRefused``."""

    def __init__(self, binding: Binding) -> None:
        self.binding = binding
        self.app = binding.app
        self._operations: dict[tuple[str, Any], OperationType] = {}

    # -- wiring ------------------------------------------------------------------
    def attach(self) -> PublishGate:
        """Wrap ``send_task`` on the app instance (idempotent).

        The common case -- maintenance off, not inside a job, no bypass, no
        per-call type -- is handled inline in the wrapper: every publish of
        the process pays it, so it is kept to a few attribute reads.
        """
        app = self.app
        if "send_task" in vars(app):
            return self
        original = app.send_task
        gate = self
        binding = self.binding
        running = admission.running_jobs()
        now_ns = time.time_ns
        bypass_user = BYPASS_USER.get
        internal_publish = INTERNAL_PUBLISH.get

        # ``*positional``: keywords bound to no named parameter (Celery's own are bound
        # once, by ``original``); three named ones here cost each keyword of a publish
        # two scans of their names, a third of the wrapper's cost (bench/publish_gate.py).
        @functools.wraps(original)
        def send_task(*positional: Any, **options: Any):
            service = binding._service
            if service is None:
                service = binding.try_service()
                if service is None:  # the control plane cannot be reached at all: fail open
                    options.pop(OPTION, None)
                    return original(*positional, **options)
            cache = service.cache
            if not cache.started:
                cache.start()
            status = cache.status
            override = options.pop(OPTION, None)
            headers = options.get("headers")
            if override is None and headers:
                override = headers.get(OPTION)
            if (
                status.is_active
                or running
                or override is not None
                or bypass_user() is not None
                or internal_publish() is not None
                or service.settings.fail_closed
            ):
                name, args, kwargs, rest = _call(positional, options)
                return gate.send(
                    original, name, args, kwargs, rest, options, override, service, status
                )
            # Nothing to judge: only the publish time is stamped (a later recovery
            # requeues in that order), inline: every publish of the process pays this.
            # A copy: the caller's dict may be published again (a signature's options).
            options["headers"] = (
                {**headers, PUBLISHED_NS: now_ns()} if headers else {PUBLISHED_NS: now_ns()}
            )
            return original(*positional, **options)

        app.send_task = send_task
        return self

    # -- the hot path ------------------------------------------------------------
    def _operation(self, name: str, task: Any, override: Any) -> OperationType:
        """Per call > per task > classifier; memoised per task object for the hot path.

        Publishes by name (no task object) are resolved every time: the name may
        get registered, with its own ``operation_type``, after the first publish.
        """
        classifier = self.binding.service.classifier
        if override is not None:
            return resolve_operation(name, classifier, override=override)
        if task is None:
            return resolve_operation(name, classifier, task=registered_task(self.app, name))
        key = (name, task)
        found = self._operations.get(key)
        if found is None:
            found = resolve_operation(name, classifier, task=task)
            if len(self._operations) >= _MEMO_LIMIT:
                self._operations.clear()
            self._operations[key] = found
        return found

    def send(
        self,
        original: Callable[..., Any],
        name: str,
        args: Any,
        kwargs: Any,
        rest: tuple[Any, ...],
        options: dict[str, Any],
        override: Any,
        service: EnhancedMaintenanceModeService,
        status: MaintenanceStatus,
    ) -> Any:
        """Decide, stamp, publish (or raise ``PublishRefused`` having published nothing)."""
        operation = self._operation(name, options.get("task_type"), override)
        bypass = current_bypass_user()
        continuation = self._continuation(status)
        internal = INTERNAL_PUBLISH.get()
        queued_entry = None
        if (
            internal is None
            and (status.is_active or service.settings.fail_closed)
            and not canvas.canvas_admitted.get()
        ):
            start = perf_counter_ns()
            self._judge(name, operation, continuation, status)
            for member, member_options in canvas.iter_option_members(options):
                self._judge(
                    member, self._member_operation(member, member_options), continuation, status
                )
            if status.test_mode:  # a rehearsal measures this node's gate
                elapsed = perf_counter_ns() - start
                service.gate_timings.add(status.activation_id, "celery", elapsed)
            if continuation and operation in status.blocked_operations and not status.test_mode:
                queued_entry = self._track_queued(name, operation, options, status)
        stamping.stamp(options, self._facts(operation, continuation, bypass, service, status))
        try:
            return original(name, args, kwargs, *rest, **options)
        except BaseException:
            if queued_entry is not None:
                self._untrack(queued_entry)
            raise

    @staticmethod
    def _facts(
        operation: OperationType,
        continuation: bool,
        bypass: Any,
        service: EnhancedMaintenanceModeService,
        status: MaintenanceStatus,
    ) -> stamping.PublishFacts:
        return stamping.PublishFacts(
            operation=operation,
            version=status.version,
            publisher=service.cache.node_id,
            published_ns=time.time_ns(),
            # A requeued job is not a continuation: consumed during a later window, it
            # is held back again (and requeued again at its lift).
            continuation=continuation,
            bypass=user_label(bypass) if bypass is not None else None,
            bypass_critical=bypass is not None and service.roles.is_critical_admin(bypass),
        )

    def internal(self, name: str, options: dict[str, Any], task: Any = None) -> None:
        """Stamp a control-plane publish that does not call ``send_task`` (the recovery
        requeue publishes recorded messages with ``amqp.send_task_message``) as ``send``
        stamps an internal one: the same facts, into ``options["headers"]`` (a copy).
        Nothing is judged or tracked (``send`` judges no internal publish either).
        ``task``: the registered task of ``name``, when the caller has it (its type is
        memoised)."""
        service = self.binding._service or self.binding.try_service()
        if service is None:  # as ``send_task`` does: fail open, unstamped
            return
        if not service.cache.started:
            service.cache.start()
        status = service.cache.status
        override = options.get(OPTION) or (options.get("headers") or {}).get(OPTION)
        operation = self._operation(name, task or options.get("task_type"), override)
        facts = self._facts(
            operation, self._continuation(status), current_bypass_user(), service, status
        )
        stamping.stamp(options, facts)

    # -- decisions ---------------------------------------------------------------
    def _continuation(self, status: MaintenanceStatus) -> bool:
        """Whether a publish now continues the admitted job running in this process."""
        if not admission.any_running():
            return False
        # Only a process running a job (a worker's pool process) can publish a
        # continuation; asking Celery costs thread-local lookups, so ask only then.
        worker_task = self.app.current_worker_task
        return worker_task is not None and admission.is_continuation(worker_task, status)

    def _member_operation(self, name: str, options: dict[str, Any]) -> OperationType:
        service = self.binding.service
        return resolve_operation(
            name,
            service.classifier,
            task=registered_task(self.app, name),
            override=options.get(OPTION) or (options.get("headers") or {}).get(OPTION),
        )

    def _judge(
        self,
        name: str,
        operation: OperationType,
        continuation: bool,
        status: Any,
        *,
        refuse: bool = True,
    ) -> None:
        service = self.binding.service
        decision = service.decide(operation, None, continuation=continuation)
        if decision is Decision.ALLOW or (decision is Decision.BLOCK and not refuse):
            return
        bypass = current_bypass_user()
        if decision is Decision.WOULD_BLOCK:
            service.record_blocked_attempt(
                operation, bypass, endpoint=name, channel="celery", would_block=True
            )
            return
        service.record_blocked_attempt(operation, bypass, endpoint=name, channel="celery")
        status = service.status
        message = service.get_maintenance_message(operation)
        log.info("maintenance: refused to publish %s (%s)", name, operation.value)
        raise PublishRefused(
            operation,
            status,
            status.retry_after(),
            f"task {name} was not queued: {message}",
            task_name=name,
        )

    def check_canvas(self, signature: Any, call_options: dict[str, Any]) -> None:
        """Judge every member of a canvas before its first publish (raises ``PublishRefused``).

        Generator-built headers stay lazy while nothing could be refused: their
        members are judged (and TEST mode's would-be refusals counted) as Celery
        pulls them. Otherwise they are unrolled here, before anything is sent.
        """
        if INTERNAL_PUBLISH.get() is not None:
            return
        service = self.binding.service
        status = service.status
        if not status.is_active and not service.settings.fail_closed:
            return
        continuation = self._continuation(status)
        lazy = None
        if not self._could_refuse(continuation):
            lazy = self._lazy_judge(continuation, status, call_options)
        for name, options in canvas.iter_members(signature, lazy):
            merged = {**options, **call_options} if call_options else options
            self._judge(name, self._member_operation(name, merged), continuation, status)
        for name, options in canvas.iter_option_members(call_options):
            self._judge(name, self._member_operation(name, options), continuation, status)

    def _could_refuse(self, continuation: bool) -> bool:
        service = self.binding.service
        return any(
            service.decide(op, None, continuation=continuation) is Decision.BLOCK
            for op in service.operations
        )

    def _lazy_judge(
        self, continuation: bool, status: Any, call_options: dict[str, Any]
    ) -> canvas.LazyJudge:
        def judged(header: Any) -> Iterator[Any]:
            lazy = self._lazy_judge(continuation, status, call_options)
            for member in header:
                for name, options in canvas.iter_members(member, lazy):
                    # Admitted as a whole when nothing could be refused: a status
                    # change midway does not cut the canvas (the worker gate judges
                    # each message again when it arrives).
                    merged = {**options, **call_options} if call_options else options
                    operation = self._member_operation(name, merged)
                    self._judge(name, operation, continuation, status, refuse=False)
                yield member

        return lambda header: regen(judged(header))

    # -- continuations in flight -------------------------------------------------
    def _track_queued(
        self, name: str, operation: OperationType, options: dict[str, Any], status: Any
    ) -> str | None:
        """Register a blocked-type continuation before it is sent, so drain waits for it."""
        task_id = options.get("task_id")
        if not task_id:
            task_id = options["task_id"] = str(uuid.uuid4())
        binding = self.binding
        service = binding.service
        try:
            JobRegistry(service.redis, service.keys).add(
                ActiveJob(
                    task_id=task_id,
                    name=name,
                    operation=operation.value,
                    worker=binding.hostname,
                    node=binding.worker_node_id,
                    state=QUEUED,
                    started=time.time(),
                    activation_id=status.activation_id,
                )
            )
        except REDIS_ERRORS as exc:
            log.warning("maintenance: continuation %s not registered: %s", task_id, exc)
            return None
        return str(task_id)

    def _untrack(self, task_id: str) -> None:
        service = self.binding.service
        with suppress(*REDIS_ERRORS):
            JobRegistry(service.redis, service.keys).remove(task_id)
