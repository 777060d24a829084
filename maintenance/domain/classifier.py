"""Map Flask endpoints / URL paths and Celery task names to ``OperationType``.

Rules are an ordered table: the first rule that matches wins. Deployment
rules come before the built-in defaults, so a deployment can reclassify
anything. Patterns are shell globs (``caption.*``) or, with a ``re:`` prefix,
regular expressions matched against the whole string.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from ..errors import ValidationError
from .modes import OperationType
from .operations import SEED_REGISTRY, OperationRegistry
from .policy import Decision, decide
from .status import MaintenanceStatus

Target = Literal["endpoint", "blueprint", "path", "task"]
TARGETS: tuple[Target, ...] = ("endpoint", "blueprint", "path", "task")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ANY = None  # rule applies to every method

Op = OperationType


@dataclass(frozen=True)
class Rule:
    """``pattern`` on ``target`` (for ``methods``, or all methods) means ``operation``."""

    operation: OperationType
    pattern: str
    target: Target = "endpoint"
    methods: frozenset[str] | None = _ANY
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        source = (
            self.pattern[3:] if self.pattern.startswith("re:") else fnmatch.translate(self.pattern)
        )
        try:
            compiled = re.compile(source)
        except re.error as exc:
            raise ValidationError(f"bad rule pattern {self.pattern!r}: {exc}") from None
        object.__setattr__(self, "regex", compiled)

    def matches(self, target: Target, value: str, method: str | None) -> bool:
        """True when this rule applies to ``value`` of kind ``target``."""
        if target != self.target:
            return False
        if self.methods is not None and method is not None and method not in self.methods:
            return False
        return self.regex.fullmatch(value) is not None

    @classmethod
    def parse(
        cls, spec: Mapping[str, Any] | Rule, operations: OperationRegistry = SEED_REGISTRY
    ) -> Rule:
        """Build a rule from a config mapping.

        ``{"operation": "caption_generation", "endpoint": "caption.*"}``,
        ``{"operation": "job_creation", "path": "/jobs*", "methods": ["POST"]}`` or
        ``{"operation": "image_processing", "task": "images.*"}`` or
        ``{"operation": "report_export", "blueprint": "reports"}``; the operation must
        be one of ``operations`` (the app's vocabulary).
        """
        if isinstance(spec, Rule):
            operations.parse(spec.operation)
            return spec
        try:
            operation = operations.parse(spec["operation"])
        except KeyError:
            raise ValidationError(f"rule {dict(spec)!r} has no 'operation'") from None
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        targets = [t for t in TARGETS if t in spec]
        if len(targets) != 1:
            raise ValidationError(
                f"rule {dict(spec)!r} needs exactly one of 'endpoint', 'blueprint', "
                "'path' or 'task'"
            )
        target: Target = targets[0]
        methods = spec.get("methods")
        return cls(
            operation=operation,
            pattern=str(spec[target]),
            target=target,
            methods=frozenset(m.upper() for m in methods) if methods else None,
        )


def _rules(
    op: OperationType,
    target: Target,
    patterns: Iterable[str],
    methods: frozenset[str] | None = _ANY,
) -> list[Rule]:
    return [Rule(op, p, target, methods) for p in patterns]


_MUT = MUTATING_METHODS

#: Built-in rules for a captioning app of the kind this project serves.
DEFAULT_RULES: tuple[Rule, ...] = tuple(
    # Never blocked: status, health, static files, metrics.
    _rules(
        Op.STATUS_CHECK,
        "endpoint",
        [
            "static",
            "*.static",
            "maintenance_api.*",
            "health*",
            "*.health*",
            "metrics",
            "maintenance_bypass",
            "maintenance_status_page.*",
        ],
    )
    + _rules(
        Op.STATUS_CHECK,
        "path",
        [
            "/static/*",
            "/health*",
            "/healthz",
            "/readyz",
            "/api/maintenance/*",
            "/metrics",
            "/favicon.ico",
        ],
    )
    # Authentication must stay reachable so admins can always log in.
    + _rules(Op.AUTHENTICATION, "endpoint", ["*login*", "*logout*", "auth.*"])
    + _rules(Op.AUTHENTICATION, "path", ["/login*", "/logout*", "/auth/*"])
    + _rules(Op.ADMIN_OPERATIONS, "endpoint", ["admin.*", "maintenance_admin.*"])
    + _rules(Op.ADMIN_OPERATIONS, "path", ["/admin*"])
    + _rules(Op.ADMIN_OPERATIONS, "task", ["celery.*", "maintenance.*", "workers.*"])
    # The six kinds of user work (mutating requests; any Celery task).
    + _rules(
        Op.CAPTION_GENERATION,
        "endpoint",
        ["*caption_generation*", "*generate_caption*", "*start_caption*", "*regenerate_caption*"],
        _MUT,
    )
    + _rules(
        Op.CAPTION_GENERATION,
        "path",
        ["/caption*/generat*", "/api/caption*/generat*", "/generate*"],
        _MUT,
    )
    + _rules(
        Op.CAPTION_GENERATION,
        "task",
        ["*caption_generation*", "*generate_caption*", "*captions.generate*"],
    )
    + _rules(Op.BATCH_OPERATIONS, "endpoint", ["*batch*", "*bulk*"], _MUT)
    + _rules(Op.BATCH_OPERATIONS, "path", ["*/batch*", "*/bulk*"], _MUT)
    + _rules(Op.BATCH_OPERATIONS, "task", ["*batch*", "*bulk*"])
    + _rules(
        Op.PLATFORM_OPERATIONS,
        "endpoint",
        ["*platform*", "*test_connection*", "*credential*"],
        _MUT,
    )
    + _rules(
        Op.PLATFORM_OPERATIONS,
        "path",
        ["/platform*", "/api/platform*", "*/test-connection*", "*/credentials*"],
        _MUT,
    )
    + _rules(
        Op.PLATFORM_OPERATIONS, "task", ["*platform*", "*connection_test*", "*test_connection*"]
    )
    + _rules(
        Op.USER_DATA_MODIFICATION,
        "endpoint",
        ["*profile*", "*settings*", "*password*", "*account*"],
        _MUT,
    )
    + _rules(
        Op.USER_DATA_MODIFICATION,
        "path",
        ["/profile*", "/settings*", "*/password*", "/account*", "/user/*", "/api/user*"],
        _MUT,
    )
    + _rules(Op.USER_DATA_MODIFICATION, "task", ["*profile*", "*user_data*"])
    + _rules(Op.IMAGE_PROCESSING, "endpoint", ["*upload*", "*image*", "*optimi*", "*analy*"], _MUT)
    + _rules(
        Op.IMAGE_PROCESSING,
        "path",
        ["/images*", "/api/images*", "/upload*", "*/optimi*", "*/analy*"],
        _MUT,
    )
    + _rules(Op.IMAGE_PROCESSING, "task", ["*image*", "*optimi*", "*analy*", "*thumbnail*"])
    + _rules(Op.JOB_CREATION, "endpoint", ["*job*", "*task*", "*queue*"], _MUT)
    + _rules(Op.JOB_CREATION, "path", ["/jobs*", "/api/jobs*", "/tasks*", "/api/tasks*"], _MUT)
    + _rules(Op.JOB_CREATION, "task", ["*job*"])
)


def blueprint_of(endpoint: str | None) -> str | None:
    """The blueprint part of a Flask endpoint (``reports.export`` -> ``reports``)."""
    if not endpoint or "." not in endpoint:
        return None
    return endpoint.rpartition(".")[0]


class MaintenanceOperationClassifier:
    """Classify requests and tasks, and answer whether an operation is blocked.

    ``rules`` (deployment rules, highest precedence) come before
    ``DEFAULT_RULES`` unless ``include_defaults`` is false; a default rule whose
    operation is not in ``operations`` (the app's vocabulary) is left out, so an
    app with its own kinds keeps only the structural defaults (status, health,
    static, login, admin). For a request, endpoint rules are tried first, then
    blueprint rules, then path rules; within each, the first matching rule wins
    (a rule with ``methods`` matches only those methods). Unmatched requests
    are ``READ_OPERATIONS`` for safe methods and ``UNKNOWN`` otherwise, so an
    unclassified mutating request is blocked in NORMAL maintenance. Unmatched
    tasks are ``UNKNOWN`` (new work of an unknown kind).
    """

    def __init__(
        self,
        rules: Iterable[Rule | Mapping[str, Any]] = (),
        *,
        include_defaults: bool = True,
        operations: OperationRegistry = SEED_REGISTRY,
    ) -> None:
        self.operations = operations
        own = [Rule.parse(r, operations) for r in rules]
        defaults = tuple(r for r in DEFAULT_RULES if r.operation in operations)
        self.own_rules: tuple[Rule, ...] = tuple(own)
        self.rules: tuple[Rule, ...] = tuple(own) + (defaults if include_defaults else ())
        by_target: dict[str, list[Rule]] = {t: [] for t in TARGETS}
        for rule in self.rules:
            by_target[rule.target].append(rule)
        self._by_target = {k: tuple(v) for k, v in by_target.items()}
        # Classification is pure, so memoise it; paths are bounded by the LRU size.
        self._classify_cached = lru_cache(maxsize=8192)(self._classify)

    def _first(self, target: Target, value: str | None, method: str | None) -> OperationType | None:
        rule = self.matching_rule(target, value, method)
        return rule.operation if rule is not None else None

    def matching_rule(self, target: Target, value: str | None, method: str | None) -> Rule | None:
        """The first rule of kind ``target`` that applies to ``value`` (``None``: none)."""
        if not value:
            return None
        for rule in self._by_target[target]:
            if rule.matches(target, value, method):
                return rule
        return None

    def explain(
        self, endpoint: str | None, method: str | None, path: str | None = None
    ) -> tuple[OperationType, Rule | None]:
        """How a request is classified: its operation and the rule that decided it
        (``None``: the method fallback)."""
        method = method.upper() if method else None
        for target, value in (
            ("endpoint", endpoint),
            ("blueprint", blueprint_of(endpoint)),
            ("path", path),
        ):
            rule = self.matching_rule(target, value, method)  # type: ignore[arg-type]
            if rule is not None:
                return rule.operation, rule
        if method is None or method in SAFE_METHODS:
            return OperationType.READ_OPERATIONS, None
        return OperationType.UNKNOWN, None

    def explain_task(self, task_name: str) -> tuple[OperationType, Rule | None]:
        """How a task is classified by name: its operation and the deciding rule."""
        rule = self.matching_rule("task", task_name, None)
        return (rule.operation, rule) if rule is not None else (OperationType.UNKNOWN, None)

    def _classify(
        self, endpoint: str | None, method: str | None, path: str | None, task_name: str | None
    ) -> OperationType:
        if task_name is not None:
            return self._first("task", task_name, None) or OperationType.UNKNOWN
        found = (
            self._first("endpoint", endpoint, method)
            or self._first("blueprint", blueprint_of(endpoint), method)
            or self._first("path", path, method)
        )
        if found is not None:
            return found
        if method is None or method in SAFE_METHODS:
            return OperationType.READ_OPERATIONS
        return OperationType.UNKNOWN

    def classify_operation(
        self,
        endpoint: str | None = None,
        method: str | None = "GET",
        *,
        path: str | None = None,
        task_name: str | None = None,
    ) -> OperationType:
        """The operation type of a request (endpoint and/or path + method) or a task.

        Endpoint rules are tried before path rules; with ``task_name`` only task
        rules apply.
        """
        return self._classify_cached(endpoint, method.upper() if method else None, path, task_name)

    def classify_task(self, task_name: str) -> OperationType:
        """The operation type of a Celery task by its name."""
        return self._classify_cached(None, None, None, task_name)

    @staticmethod
    def is_blocked_operation(
        operation: OperationType, status: MaintenanceStatus, **caller: bool
    ) -> bool:
        """Whether ``operation`` is refused under ``status`` for this caller
        (``is_admin=``, ``is_critical_admin=``, ``continuation=``; see ``policy.decide``)."""
        return decide(status, operation, **caller) is Decision.BLOCK
