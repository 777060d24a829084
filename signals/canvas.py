"""Canvas publishes refused as a whole, before their first message.

A group publish is not atomic: ``group.apply_async`` calls ``send_task`` once
per member (``canvas.py`` ``group._apply_tasks``), and a chord writes its
header bookkeeping to the result backend before publishing the header.
So ``group``, ``chain`` and ``chord`` ``apply_async`` are gated once, up front,
for apps with the hooks installed: every member (with its links, chain and
chord body) is judged before anything is sent. The members' own
``send_task`` calls then skip the decision already taken.

A group or chord header built from a generator is lazy: Celery publishes each
member as the generator yields it (``celery.utils.functional.regen``; the
generator may wait for earlier members, Celery issue #3021). Whether a member
is refused depends on its task, known only once yielded, so all-or-nothing
refusal and incremental publishing exclude each other. While nothing can be
refused (TEST mode, an admin's bypass, a continuation in NORMAL mode) the
members are judged as they are yielded and the generator stays lazy; while
something could be, the header is unrolled before the first publish (see
``docs/celery.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from celery.utils.functional import _regen

from workers.binding import binding_of

#: True while a canvas admitted as a whole is publishing its members.
canvas_admitted: ContextVar[bool] = ContextVar("maintenance_canvas_admitted", default=False)

_MEMBER_OPTIONS = ("link", "link_error", "chain", "chord")


#: Replaces a lazy header (``regen``) by one judging each member as it is yielded.
LazyJudge = Callable[[Any], Any]


def iter_members(
    signature: Any, lazy: LazyJudge | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every task a (possibly nested) signature would publish: ``(name, options)``.

    With ``lazy``, a group or chord header built from a generator is not walked:
    it is replaced in place by ``lazy(header)``, which Celery then iterates.
    """
    if signature is None:
        return
    if isinstance(signature, list | tuple):
        for item in signature:
            yield from iter_members(item, lazy)
        return
    if not isinstance(signature, dict):
        return  # a Signature is a dict; anything else publishes nothing we can see
    kind = signature.get("subtask_type")
    kwargs = signature.get("kwargs") or {}
    options = signature.get("options") or {}
    if kind in ("group", "chain"):
        yield from _walk(kwargs, "tasks", lazy)
    elif kind == "chord":
        yield from _walk(kwargs, "header", lazy)
        yield from iter_members(kwargs.get("body") or options.get("body"), lazy)
    elif signature.get("task"):
        yield str(signature["task"]), options
    yield from iter_option_members(options)


def _walk(
    container: dict[str, Any], key: str, lazy: LazyJudge | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    value = container.get(key)
    if lazy is not None and isinstance(value, _regen):
        container[key] = lazy(value)
        return
    yield from iter_members(value, lazy)


def iter_option_members(options: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The tasks a publish's options would publish later (links, chain, chord body)."""
    for key in _MEMBER_OPTIONS:
        value = options.get(key)
        if value:
            yield from iter_members(value)


def _gated(original: Callable[..., Any]) -> Callable[..., Any]:
    def apply_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        if canvas_admitted.get():
            return original(self, *args, **kwargs)
        try:
            app = self.app
        except Exception:  # no app resolvable: nothing of ours to gate
            return original(self, *args, **kwargs)
        binding = binding_of(app)
        if (
            binding is None
            or binding.gate is None
            or app.conf.task_always_eager
            or binding.try_service() is None
        ):
            return original(self, *args, **kwargs)
        binding.gate.check_canvas(self, kwargs)
        token = canvas_admitted.set(True)
        try:
            return original(self, *args, **kwargs)
        finally:
            canvas_admitted.reset(token)

    apply_async.__wrapped__ = original  # type: ignore[attr-defined]
    apply_async._maintenance_gated = True  # type: ignore[attr-defined]
    apply_async.__doc__ = original.__doc__
    return apply_async


def gate_canvas_classes() -> None:
    """Gate ``group``/``chain``/``chord`` ``apply_async`` once per process (idempotent)."""
    from celery.canvas import _chain, _chord, group

    for cls in (group, _chain, _chord):
        current = cls.__dict__.get("apply_async")
        if current is None or getattr(current, "_maintenance_gated", False):
            continue
        cls.apply_async = _gated(current)
