"""The blocking policy and the operation classifier (pure: no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maintenance import (
    MaintenanceMode,
    MaintenanceOperationClassifier,
    MaintenanceStatus,
    OperationType,
    Rule,
    ValidationError,
)
from maintenance.domain.classifier import DEFAULT_RULES, MUTATING_METHODS, SAFE_METHODS
from maintenance.domain.modes import WORK_OPERATIONS
from maintenance.domain.operations import SEED_REGISTRY
from maintenance.domain.policy import Decision, blocked_set_for, decide

Op = OperationType
ALL_OPS = tuple(SEED_REGISTRY)
classifier = MaintenanceOperationClassifier()


def active(mode: MaintenanceMode, **kw: object) -> MaintenanceStatus:
    return MaintenanceStatus(
        is_active=True,
        mode=mode,
        test_mode=mode is MaintenanceMode.TEST,
        blocked_operations=blocked_set_for(mode),
        **kw,  # type: ignore[arg-type]
    )


# -- the captioning app's endpoints ------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "method", "path", "expected"),
    [
        ("caption.start_caption_generation", "POST", "/caption/generate", Op.CAPTION_GENERATION),
        ("api.generate_caption", "POST", "/api/captions/generate", Op.CAPTION_GENERATION),
        ("jobs.create_job", "POST", "/jobs", Op.JOB_CREATION),
        ("jobs.cancel_job", "POST", "/jobs/12/cancel", Op.JOB_CREATION),
        ("jobs.list_jobs", "GET", "/jobs", Op.READ_OPERATIONS),
        ("platform.switch_platform", "POST", "/platform/switch", Op.PLATFORM_OPERATIONS),
        ("platform.test_connection", "POST", "/platform/test", Op.PLATFORM_OPERATIONS),
        ("platform.update_credentials", "POST", "/platform/creds", Op.PLATFORM_OPERATIONS),
        ("review.batch_review", "POST", "/review/batch", Op.BATCH_OPERATIONS),
        ("review.bulk_caption_update", "POST", "/review/bulk", Op.BATCH_OPERATIONS),
        ("user.update_profile", "POST", "/profile", Op.USER_DATA_MODIFICATION),
        ("user.update_settings", "POST", "/settings", Op.USER_DATA_MODIFICATION),
        ("user.change_password", "POST", "/password", Op.USER_DATA_MODIFICATION),
        ("images.upload_image", "POST", "/images/upload", Op.IMAGE_PROCESSING),
        ("images.optimize_image", "POST", "/images/3/optimize", Op.IMAGE_PROCESSING),
        ("images.analyze_image", "POST", "/images/3/analyze", Op.IMAGE_PROCESSING),
        ("auth.login", "POST", "/login", Op.AUTHENTICATION),
        ("admin.dashboard", "POST", "/admin", Op.ADMIN_OPERATIONS),
        ("static", "GET", "/static/app.css", Op.STATUS_CHECK),
        ("maintenance_api.status", "GET", "/api/maintenance/status", Op.STATUS_CHECK),
        ("health", "GET", "/health", Op.STATUS_CHECK),
        ("index", "GET", "/", Op.READ_OPERATIONS),
        ("misc.frobnicate", "POST", "/frobnicate", Op.UNKNOWN),
    ],
)
def test_default_rules_classify_the_captioning_app(
    endpoint: str, method: str, path: str, expected: OperationType
) -> None:
    assert classifier.classify_operation(endpoint, method, path=path) is expected


def test_paths_classify_without_an_endpoint() -> None:
    assert classifier.classify_operation(None, "POST", path="/platform/switch") is (
        Op.PLATFORM_OPERATIONS
    )
    assert classifier.classify_operation(None, "GET", path="/nowhere") is Op.READ_OPERATIONS


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("captioner.tasks.generate_caption", Op.CAPTION_GENERATION),
        ("captioner.tasks.optimize_image", Op.IMAGE_PROCESSING),
        ("captioner.tasks.analyze_image", Op.IMAGE_PROCESSING),
        ("captioner.tasks.bulk_caption_update", Op.BATCH_OPERATIONS),
        ("captioner.tasks.test_platform_connection", Op.PLATFORM_OPERATIONS),
        ("captioner.tasks.process_job", Op.JOB_CREATION),
        ("celery.chord_unlock", Op.ADMIN_OPERATIONS),
        ("something.else", Op.UNKNOWN),
    ],
)
def test_task_names_are_classified_by_task_rules(task: str, expected: OperationType) -> None:
    assert classifier.classify_task(task) is expected


def test_deployment_rules_take_precedence_over_defaults() -> None:
    custom = MaintenanceOperationClassifier(
        [{"operation": "read_operations", "endpoint": "jobs.create_job"}]
    )
    assert custom.classify_operation("jobs.create_job", "POST") is Op.READ_OPERATIONS


def test_regex_rules_and_method_filters() -> None:
    custom = MaintenanceOperationClassifier(
        [{"operation": "batch_operations", "path": r"re:/v\d+/imports", "methods": ["put"]}],
        include_defaults=False,
    )
    assert custom.classify_operation(None, "PUT", path="/v2/imports") is Op.BATCH_OPERATIONS
    assert custom.classify_operation(None, "GET", path="/v2/imports") is Op.READ_OPERATIONS


@pytest.mark.parametrize(
    "spec",
    [
        {"endpoint": "x"},
        {"operation": "nope", "endpoint": "x"},
        {"operation": "unknown"},
        {"operation": "unknown", "endpoint": "x", "path": "/x"},
        {"operation": "unknown", "path": "re:("},
    ],
)
def test_bad_rules_are_refused_with_a_clear_error(spec: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        MaintenanceOperationClassifier([spec])


names = st.text(alphabet="abcdefghij._/", min_size=1, max_size=12)


@given(
    rules=st.lists(
        st.tuples(st.sampled_from(ALL_OPS), st.sampled_from(["*", "a*", "*b*", "c.*", "re:.*d"])),
        min_size=1,
        max_size=6,
    ),
    endpoint=names,
    method=st.sampled_from(sorted(SAFE_METHODS | MUTATING_METHODS)),
)
def test_the_first_matching_rule_wins(
    rules: list[tuple[OperationType, str]], endpoint: str, method: str
) -> None:
    built = [Rule(op, pattern) for op, pattern in rules]
    custom = MaintenanceOperationClassifier(built, include_defaults=False)
    expected = next((r.operation for r in built if r.matches("endpoint", endpoint, method)), None)
    got = custom.classify_operation(endpoint, method)
    if expected is None:
        assert got in (Op.READ_OPERATIONS, Op.UNKNOWN)
    else:
        assert got is expected


@given(
    endpoint=st.none() | st.text(alphabet="abcdefghijklmnopqrstuvwxyz._", min_size=1, max_size=14),
    path=st.none() | st.text(alphabet="/abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=14),
    method=st.sampled_from(sorted(MUTATING_METHODS)),
)
def test_every_unclassified_mutating_request_is_blocked_in_normal(
    endpoint: str | None, path: str | None, method: str
) -> None:
    matched = any(
        (rule.target == "endpoint" and endpoint and rule.matches("endpoint", endpoint, method))
        or (rule.target == "path" and path and rule.matches("path", path, method))
        for rule in DEFAULT_RULES
    )
    op = classifier.classify_operation(endpoint, method, path=path)
    if not matched:
        assert op is Op.UNKNOWN
        assert decide(active(MaintenanceMode.NORMAL), op) is Decision.BLOCK


@given(op=st.sampled_from(ALL_OPS), admin=st.booleans(), continuation=st.booleans())
def test_nothing_is_blocked_when_maintenance_is_off(
    op: OperationType, admin: bool, continuation: bool
) -> None:
    assert decide(MaintenanceStatus(), op, is_admin=admin, continuation=continuation) is (
        Decision.ALLOW
    )


@given(op=st.sampled_from(ALL_OPS))
def test_test_mode_never_blocks_but_records_what_it_would_block(op: OperationType) -> None:
    result = decide(active(MaintenanceMode.TEST), op)
    assert result is not Decision.BLOCK
    expected = (
        Decision.WOULD_BLOCK if op in blocked_set_for(MaintenanceMode.NORMAL) else (Decision.ALLOW)
    )
    assert result is expected


def test_normal_blocks_the_six_work_kinds_and_unknown_only() -> None:
    status = active(MaintenanceMode.NORMAL)
    blocked = {op for op in ALL_OPS if decide(status, op) is Decision.BLOCK}
    assert blocked == set(WORK_OPERATIONS) | {Op.UNKNOWN}


def test_emergency_blocks_everything_but_admin_status_and_login() -> None:
    status = active(MaintenanceMode.EMERGENCY)
    allowed = {op for op in ALL_OPS if decide(status, op) is Decision.ALLOW}
    assert allowed == {Op.ADMIN_OPERATIONS, Op.STATUS_CHECK, Op.AUTHENTICATION}


def test_admins_bypass_and_continuations_complete_only_in_normal() -> None:
    normal, emergency = active(MaintenanceMode.NORMAL), active(MaintenanceMode.EMERGENCY)
    op = Op.CAPTION_GENERATION
    assert decide(normal, op, is_admin=True) is Decision.ALLOW
    assert decide(emergency, op, is_admin=True) is Decision.ALLOW
    assert decide(normal, op, continuation=True) is Decision.ALLOW
    assert decide(emergency, op, continuation=True) is Decision.BLOCK


def test_critical_admin_only_lockdown_turns_ordinary_admins_away() -> None:
    status = active(MaintenanceMode.EMERGENCY, critical_admin_only=True)
    assert decide(status, Op.ADMIN_OPERATIONS, is_admin=True) is Decision.BLOCK
    assert decide(status, Op.ADMIN_OPERATIONS, is_critical_admin=True) is Decision.ALLOW
    assert decide(status, Op.STATUS_CHECK, is_admin=False) is Decision.ALLOW
    assert decide(status, Op.AUTHENTICATION, is_admin=False) is Decision.ALLOW


def test_overrides_cannot_block_status_or_login() -> None:
    with pytest.raises(ValidationError, match="can never be blocked"):
        blocked_set_for(MaintenanceMode.NORMAL, [Op.STATUS_CHECK])
    assert blocked_set_for(MaintenanceMode.NORMAL, [Op.IMAGE_PROCESSING]) == (Op.IMAGE_PROCESSING,)
