"""An app's vocabulary of operation types: names, labels, messages, default blocking.

An app declares the kinds of work it has (``OperationSpec``); the registry adds the
kinds the control plane itself relies on (admin, login, reads, status, unclassified)
and answers every question a surface asks about the vocabulary: parse a name (an
unknown one is refused with the known ones listed), order a set, label it, word its
message, and say which kinds a mode blocks by default. Without declarations an app
gets the seed vocabulary (``SEED_REGISTRY``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .modes import SEED_WORK, STRUCTURAL, MaintenanceMode, OperationType

_N = MaintenanceMode.NORMAL
_E = MaintenanceMode.EMERGENCY

#: The modes an operation may name as blocking it by default (TEST rehearses NORMAL).
BLOCKING_MODES = (_N, _E)


@dataclass(frozen=True)
class OperationSpec:
    """One kind of work: ``name``, a short ``label`` (panel, metrics help, reports), a
    ``title`` (the 503 page's headline), the user-facing ``message``, and the modes that
    block it by default (``blocked_in``; TEST records what NORMAL would block)."""

    name: OperationType
    label: str
    message: str = ""
    title: str = ""
    blocked_in: frozenset[MaintenanceMode] = field(default=frozenset(BLOCKING_MODES))

    @classmethod
    def parse(
        cls, spec: OperationSpec | Mapping[str, Any], name: str | None = None
    ) -> OperationSpec:
        """From a config mapping: ``{"name": "report_export", "label": "Report exports",
        "message": "...", "title": "...", "blocked_in": ["normal", "emergency"]}``
        (``name`` may come from the key of a mapping of specs instead)."""
        if isinstance(spec, OperationSpec):
            return spec
        if not isinstance(spec, Mapping):
            raise ValueError(f"operation type {name or spec!r}: expected a mapping, got {spec!r}")
        unknown = set(spec) - {"name", "label", "message", "title", "blocked_in"}
        raw_name = spec.get("name", name)
        if unknown:
            raise ValueError(
                f"operation type {raw_name!r}: unknown key(s) {', '.join(sorted(unknown))} "
                "(known: name, label, message, title, blocked_in)"
            )
        if not raw_name:
            raise ValueError(f"operation type {dict(spec)!r} has no 'name'")
        op = OperationType(str(raw_name))
        blocked = spec.get("blocked_in", [m.value for m in BLOCKING_MODES])
        if isinstance(blocked, str):
            blocked = [blocked]
        modes: set[MaintenanceMode] = set()
        for mode in blocked:
            try:
                found = MaintenanceMode(str(mode).strip().lower())
            except ValueError:
                found = None
            if found not in BLOCKING_MODES:
                raise ValueError(
                    f"operation type {op.value!r}: blocked_in {mode!r} is not one of "
                    f"{', '.join(m.value for m in BLOCKING_MODES)} (TEST follows normal)"
                )
            modes.add(found)
        label = str(spec.get("label") or op.value.replace("_", " ").capitalize())
        return cls(
            name=op,
            label=label,
            message=str(spec.get("message") or ""),
            title=str(spec.get("title") or ""),
            blocked_in=frozenset(modes),
        )


def _spec(
    name: str, label: str, message: str, title: str, *modes: MaintenanceMode
) -> OperationSpec:
    return OperationSpec(OperationType(name), label, message, title, frozenset(modes))


#: The seed's own kinds of user work.
SEED_SPECS: tuple[OperationSpec, ...] = (
    _spec(
        "caption_generation",
        "Caption generation",
        "Caption generation is paused during maintenance. Captions already being "
        "generated will finish and be saved.",
        "Caption generation is paused",
        _N,
        _E,
    ),
    _spec(
        "job_creation",
        "Job creation",
        "New jobs cannot be created or changed during maintenance. Jobs that were "
        "already running will finish.",
        "Jobs cannot be created or changed right now",
        _N,
        _E,
    ),
    _spec(
        "platform_operations",
        "Platform operations",
        "Platform switching, connection tests and credential updates are unavailable "
        "during maintenance.",
        "Platform changes are unavailable",
        _N,
        _E,
    ),
    _spec(
        "batch_operations",
        "Batch operations",
        "Batch processing and bulk review are paused during maintenance.",
        "Batch processing is paused",
        _N,
        _E,
    ),
    _spec(
        "user_data_modification",
        "User data changes",
        "Profile, settings and password changes are unavailable during maintenance. "
        "Your data is safe and unchanged.",
        "Account changes are unavailable",
        _N,
        _E,
    ),
    _spec(
        "image_processing",
        "Image processing",
        "Image upload, optimisation and analysis are paused during maintenance.",
        "Image processing is paused",
        _N,
        _E,
    ),
)

#: The kinds every vocabulary has (an app may reword them, not drop them).
STRUCTURAL_SPECS: tuple[OperationSpec, ...] = (
    _spec(
        "admin_operations",
        "Admin operations (non-admins)",
        "Administrative actions are restricted during maintenance.",
        "Administration is restricted",
    ),
    _spec(
        "authentication",
        "Logins",
        "Signing in is limited to administrators during maintenance.",
        "Sign-in is limited to administrators",
    ),
    _spec(
        "read_operations",
        "Reads",
        "This page is unavailable during maintenance.",
        "This page is unavailable",
        _E,
    ),
    _spec("status_check", "Status checks", "", "Maintenance in progress"),
    _spec(
        "unknown",
        "Unclassified requests",
        "This action is unavailable during maintenance.",
        "This action is unavailable",
        _N,
        _E,
    ),
)

assert tuple(s.name for s in SEED_SPECS) == SEED_WORK
assert tuple(s.name for s in STRUCTURAL_SPECS) == STRUCTURAL

#: Never blocked: users must be able to learn the status, and admins to log in.
NEVER_BLOCKED: frozenset[OperationType] = frozenset(
    {OperationType.STATUS_CHECK, OperationType.AUTHENTICATION}
)


class OperationRegistry:
    """An app's operation types, in declaration order, plus the structural ones."""

    def __init__(self, specs: Iterable[OperationSpec | Mapping[str, Any]] = ()) -> None:
        own = [OperationSpec.parse(s) for s in specs]
        seen: set[str] = set()
        for spec in own:
            if spec.name in seen:
                raise ValueError(f"operation type {spec.name.value!r} is declared twice")
            seen.add(spec.name)
        structural = {s.name: s for s in STRUCTURAL_SPECS}
        # An app may reword a structural kind; its blocking stays the plane's.
        rewording = {s.name: s for s in own if s.name in structural}
        for name, spec in rewording.items():
            base = structural[name]
            structural[name] = OperationSpec(
                name,
                spec.label or base.label,
                spec.message or base.message,
                spec.title or base.title,
                base.blocked_in,
            )
        work = [s for s in own if s.name not in structural]
        self._specs: dict[OperationType, OperationSpec] = {s.name: s for s in work}
        self._specs.update(structural)
        self._order = {op: i for i, op in enumerate(self._specs)}
        self.work: tuple[OperationType, ...] = tuple(s.name for s in work)
        self._by_name = {op.value: op for op in self._specs}

    @classmethod
    def coerce(cls, value: Any) -> OperationRegistry:
        """A registry from ``None`` (the seed's), a registry, a list of specs or a
        mapping of name to spec (config files)."""
        if value is None:
            return SEED_REGISTRY
        if isinstance(value, OperationRegistry):
            return value
        if isinstance(value, Mapping):
            return cls(OperationSpec.parse(spec, str(name)) for name, spec in value.items())
        if isinstance(value, str | bytes):
            raise ValueError("operation types must be a list or mapping of specs, not a string")
        return cls(value)

    # -- the vocabulary ------------------------------------------------------------
    def __iter__(self) -> Iterator[OperationType]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, op: object) -> bool:
        return op in self._specs

    def specs(self) -> tuple[OperationSpec, ...]:
        """Every kind's spec in order."""
        return tuple(self._specs.values())

    def names(self) -> list[str]:
        """Every name, in order (the OpenAPI enum, CLI help)."""
        return [op.value for op in self._specs]

    def blockable(self) -> list[str]:
        """The names an operator may put in a blocked set."""
        return [op.value for op in self._specs if op not in NEVER_BLOCKED]

    def fingerprint(self) -> str:
        """The app's own kinds, comma-separated ("" for the seed vocabulary): what a node
        publishes so that processes reading another declaration are noticed."""
        if self.work == SEED_WORK:
            return ""
        return ",".join(op.value for op in self.work)

    def known(self) -> str:
        """The names, comma-separated, for error messages."""
        return ", ".join(self.names())

    def parse(self, value: object) -> OperationType:
        """The kind named by ``value`` (case-insensitive, ``-`` for ``_``), or
        ``ValueError`` listing the known names."""
        if isinstance(value, OperationType) and value in self._specs:
            return value
        if isinstance(value, str):
            found = self._by_name.get(value)
            if found is None:
                found = self._by_name.get(value.strip().lower().replace("-", "_"))
            if found is not None:
                return found
        raise ValueError(f"unknown operation type {value!r} (known: {self.known()})")

    def exact(self, value: object) -> OperationType:
        """The kind spelled exactly ``value`` (the JSON API), or ``ValueError``."""
        if isinstance(value, str) and value in self._by_name:
            return self._by_name[value]
        raise ValueError(f"unknown operation type {value!r} (known: {self.known()})")

    # -- what each kind says -----------------------------------------------------
    def spec(self, op: OperationType) -> OperationSpec | None:
        """The spec of ``op`` (``None``: not in this vocabulary)."""
        return self._specs.get(op)

    def label(self, op: OperationType) -> str:
        """Short label (falls back to the name)."""
        spec = self._specs.get(op)
        return spec.label if spec else str(op)

    def title(self, op: OperationType | None) -> str:
        """The 503 page's headline for ``op``."""
        spec = self._specs.get(op) if op is not None else None
        if spec is None:
            return self._specs[OperationType.UNKNOWN].title
        return spec.title or f"{spec.label} is unavailable"

    def message(self, op: OperationType | None) -> str:
        """What is unavailable, in the user's words ("" for none)."""
        spec = self._specs.get(op) if op is not None else None
        return spec.message if spec else ""

    # -- blocking ------------------------------------------------------------------
    def default_blocked(self, mode: MaintenanceMode) -> frozenset[OperationType]:
        """The kinds ``mode`` blocks by default (TEST: what NORMAL would block)."""
        looked = _N if mode is MaintenanceMode.TEST else mode
        return frozenset(op for op, s in self._specs.items() if looked in s.blocked_in)

    def ordered(self, ops: Iterable[OperationType]) -> tuple[OperationType, ...]:
        """``ops`` in declaration order, without duplicates (kinds from another
        vocabulary, e.g. in a stored status, come last by name)."""
        order = self._order
        return tuple(sorted(set(ops), key=lambda op: (order.get(op, len(order)), str(op))))


SEED_REGISTRY = OperationRegistry(SEED_SPECS)
