"""A recorded job's message, built and published again without ``send_task``.

The recovery requeue republishes tens of thousands of recorded jobs at a time. Through
``app.send_task`` each one paid for what only a caller's *new* publish needs: the
publish gate's wrapper, a result-backend subscription (``backend.on_task_call``: with a
Redis result backend a ``SUBSCRIBE`` and, when the returned ``AsyncResult`` is dropped,
an ``UNSUBSCRIBE``) and the ``AsyncResult`` itself. ``publish`` does what ``send_task``
does with a record's options, in the same order, and hands the message to Celery's own
``amqp.send_task_message``:

* the registered task's execution options under the record's own (``send_task``'s
  merge), the record's time limits and ``ignore_result``, Celery's router (the route
  the requeue gives: queue, or exchange and routing key), the running task's ids when
  the recovery runs inside one, the message built by ``amqp.create_task_message``
  (the app's protocol, ``reply_to``, ``task_send_sent_event``);
* published by ``amqp.send_task_message`` with the publish gate's stamps in its headers
  (``PublishGate.internal``: what the gate stamps on an internal publish), sending
  ``before_task_publish``, ``after_task_publish`` (``workers.published``) and the
  ``task-sent`` event when enabled.

Not done, on purpose: no result subscription (a caller waiting on the job's result
subscribes itself: ``AsyncResult(id).get()`` reads the stored state, then subscribes,
in any process), no ``AsyncResult``, no ``add_to_parent``. A record with an ``eta`` or
``expires`` goes through ``send_task`` (``publish`` returns False): those need Celery's
clock arithmetic (``expiration``) and its native delayed delivery on quorum queues.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery.utils.functional import maybe_list
from celery.utils.nodenames import anon_nodename

from .binding import binding_of
from .internal_publish import internal_publish

log = logging.getLogger("maintenance.celery")

#: Record options that make ``publish`` leave the record to ``send_task``.
SEND_TASK_ONLY = frozenset({"eta", "expires", "countdown"})
#: ``task-sent`` events a ``SentEvents`` buffers at most before sending them.
EVENTS_BUFFER = 1000


def needs_send_task(options: dict[str, Any]) -> bool:
    """Whether a record with these options is published through ``send_task``."""
    return not SEND_TASK_ONLY.isdisjoint(options)


class SentEvents:
    """The ``event_dispatcher`` of a recovery's publishes: the ``task-sent`` event of each
    (``task_send_sent_event``) goes out on an event dispatcher of its own, buffered (one
    ``task.multi`` message per ``flush``), not on the publishing channel -- a RabbitMQ
    batch holds that channel's writes, and its delivery tags count its messages."""

    def __init__(self, app: Any, stack: contextlib.ExitStack) -> None:
        self.app = app
        self._stack = stack
        self._dispatcher: Any = None
        self._failed = False

    def publish(self, type: str, fields: dict[str, Any], producer: Any, **_: Any) -> None:
        """What ``amqp.send_task_message`` calls for the event (``producer`` unused)."""
        dispatcher = self._open()
        if dispatcher is None:
            return
        try:
            dispatcher.send(type, **fields)
        except Exception as exc:  # events are for watching; never fail the requeue
            log.warning("maintenance: %s event not sent: %s", type, exc)

    def _open(self) -> Any:
        if self._dispatcher is None and not self._failed:
            try:
                sender = self._stack.enter_context(self.app.events.default_dispatcher())
                sender.buffer_group = frozenset({"task"})
                sender.buffer_limit = EVENTS_BUFFER
                self._dispatcher = sender
            except Exception as exc:
                log.warning("maintenance: no event dispatcher for task-sent events: %s", exc)
                self._failed = True
        return self._dispatcher

    def flush(self) -> None:
        """Send what is buffered (never raises)."""
        if self._dispatcher is not None:
            try:
                self._dispatcher.flush()
            except Exception as exc:
                log.warning("maintenance: task-sent events not sent: %s", exc)


class Republisher:
    """Builds and publishes recorded messages of one app (the registered tasks'
    execution options looked up once per task name)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        binding = binding_of(app)
        self.gate = getattr(binding, "gate", None)
        self._exec_options: dict[str, tuple[Any, dict[str, Any]]] = {}
        #: The ``origin`` header ``send_task`` would write (``gen<pid>@<host>``), built
        #: once rather than per message.
        self._origin = anon_nodename()

    def _task(self, name: str) -> tuple[Any, dict[str, Any]]:
        """The registered task of ``name`` (or None) and its execution options, as
        ``send_task`` merges them."""
        found = self._exec_options.get(name)
        if found is None:
            task = self.app.tasks.get(name)
            options: dict[str, Any] = {}
            get_exec_options = getattr(task, "_get_exec_options", None)
            if get_exec_options is not None:
                options = {k: v for k, v in (get_exec_options() or {}).items() if v is not None}
            found = self._exec_options[name] = (task, options)
        return found

    def publish(
        self,
        producer: Any,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        task_id: str,
        options: dict[str, Any],
    ) -> bool:
        """Publish task ``name`` under ``task_id`` with ``send_task`` ``options`` (the
        record's, with the requeue's headers, route and publish options) on
        ``producer``; False, having published nothing, for a record ``send_task`` must
        publish (``SEND_TASK_ONLY``). Raises what building or publishing raises."""
        if needs_send_task(options):
            return False
        app = self.app
        amqp = app.amqp
        task, exec_options = self._task(name)
        options = dict(exec_options, **options) if exec_options else dict(options)
        time_limit = options.pop("time_limit", None)
        soft_time_limit = options.pop("soft_time_limit", None)
        ignore_result = options.pop("ignore_result", None)
        link, link_error = options.pop("link", None), options.pop("link_error", None)
        group_id, group_index = options.pop("group_id", None), options.pop("group_index", None)
        chord, chain = options.pop("chord", None), options.pop("chain", None)
        root_id, parent_id = options.pop("root_id", None), options.pop("parent_id", None)
        retries, shadow = options.pop("retries", 0), options.pop("shadow", None)
        reply_to = options.pop("reply_to", None)
        origin = options.pop("origin", None) or self._origin
        options = amqp.router.route(options, name, args, kwargs, task)
        if not root_id or not parent_id:
            parent = app.current_worker_task
            if parent:
                root_id = root_id or parent.request.root_id or parent.request.id
                parent_id = parent_id or parent.request.id
                if app.conf.task_inherit_parent_priority:
                    options.setdefault("priority", parent.request.delivery_info.get("priority"))
        message = amqp.create_task_message(
            task_id,
            name,
            args,
            kwargs,
            None,
            None,
            group_id,
            group_index,
            None,
            retries,
            chord,
            maybe_list(link),
            maybe_list(link_error),
            reply_to or app.thread_oid,
            time_limit,
            soft_time_limit,
            app.conf.task_send_sent_event,
            root_id,
            parent_id,
            shadow,
            chain,
            ignore_result=ignore_result,
            origin=origin,
            **options,
        )
        for stamp in options.pop("stamped_headers", None) or ():
            options.pop(stamp, None)
        for built_in in ("argsrepr", "kwargsrepr"):  # in the message now
            options.pop(built_in, None)
        if self.gate is not None:
            self.gate.internal(name, options, task)  # its stamps, into ``headers``
        with internal_publish("recovery"):
            amqp.send_task_message(producer, name, message, **options)
        return True
