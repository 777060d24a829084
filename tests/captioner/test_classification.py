"""Every endpoint and task of the captioner is classified as the operation type it is."""

from __future__ import annotations

from maintenance import MaintenanceOperationClassifier, OperationType
from maintenance.domain.modes import parse_operation

from .conftest import Captioner

Op = OperationType
OWN_BLUEPRINTS = {
    "main",
    "auth",
    "captions",
    "jobs",
    "platforms",
    "review",
    "account",
    "images",
    "admin",
}

#: (endpoint, method) -> the operation type it must count as under the default rules.
EXPECTED = {
    ("main.index", "GET"): Op.READ_OPERATIONS,
    ("main.health", "GET"): Op.STATUS_CHECK,
    ("auth.login_form", "GET"): Op.AUTHENTICATION,
    ("auth.login", "POST"): Op.AUTHENTICATION,
    ("auth.logout", "POST"): Op.AUTHENTICATION,
    ("captions.index", "GET"): Op.READ_OPERATIONS,
    ("captions.start_caption_generation", "POST"): Op.CAPTION_GENERATION,
    ("captions.regenerate_caption", "POST"): Op.CAPTION_GENERATION,
    ("jobs.list_jobs", "GET"): Op.READ_OPERATIONS,
    ("jobs.job_detail", "GET"): Op.READ_OPERATIONS,
    ("jobs.create_job", "POST"): Op.JOB_CREATION,
    ("jobs.cancel_job", "POST"): Op.JOB_CREATION,
    ("platforms.index", "GET"): Op.READ_OPERATIONS,
    ("platforms.switch_platform", "POST"): Op.PLATFORM_OPERATIONS,
    ("platforms.test_connection", "POST"): Op.PLATFORM_OPERATIONS,
    ("platforms.update_credentials", "POST"): Op.PLATFORM_OPERATIONS,
    ("platforms.post_caption", "POST"): Op.PLATFORM_OPERATIONS,
    ("review.index", "GET"): Op.READ_OPERATIONS,
    ("review.batch_review", "POST"): Op.BATCH_OPERATIONS,
    ("review.bulk_update_captions", "POST"): Op.BATCH_OPERATIONS,
    ("account.profile", "GET"): Op.READ_OPERATIONS,
    ("account.settings", "GET"): Op.READ_OPERATIONS,
    ("account.update_profile", "POST"): Op.USER_DATA_MODIFICATION,
    ("account.update_settings", "POST"): Op.USER_DATA_MODIFICATION,
    ("account.change_password", "POST"): Op.USER_DATA_MODIFICATION,
    ("images.index", "GET"): Op.READ_OPERATIONS,
    ("images.detail", "GET"): Op.READ_OPERATIONS,
    ("images.raw", "GET"): Op.READ_OPERATIONS,
    ("images.upload_image", "POST"): Op.IMAGE_PROCESSING,
    ("images.optimize_image", "POST"): Op.IMAGE_PROCESSING,
    ("images.analyze_image", "POST"): Op.IMAGE_PROCESSING,
    ("admin.index", "GET"): Op.ADMIN_OPERATIONS,
    ("admin.purge_orphans", "POST"): Op.ADMIN_OPERATIONS,
    ("admin.set_role", "POST"): Op.ADMIN_OPERATIONS,
}

TASKS = {
    "captioner.generate_caption": Op.CAPTION_GENERATION,
    "captioner.run_job": Op.JOB_CREATION,
    "captioner.test_platform_connection": Op.PLATFORM_OPERATIONS,
    "captioner.post_to_platform": Op.PLATFORM_OPERATIONS,
    "captioner.bulk_update_captions": Op.BATCH_OPERATIONS,
    "captioner.optimize_image": Op.IMAGE_PROCESSING,
    "captioner.analyze_image": Op.IMAGE_PROCESSING,
    "captioner.sync_profile": Op.USER_DATA_MODIFICATION,
    "captioner.purge_orphan_captions": Op.ADMIN_OPERATIONS,
}


def test_every_endpoint_is_classified_as_intended_by_the_default_rules(
    captioner: Captioner,
) -> None:
    """The app's url_map, endpoint by endpoint and method by method, against EXPECTED:
    a new endpoint fails here until its operation type is decided."""
    classifier = MaintenanceOperationClassifier()
    found = {}
    for rule in captioner.app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in OWN_BLUEPRINTS:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found[(rule.endpoint, method)] = classifier.classify_operation(
                rule.endpoint, method, path=rule.rule
            )
    assert found == EXPECTED


def test_every_task_declares_its_operation_type(captioner: Captioner) -> None:
    """Each captioner task carries ``operation_type``, and it is the intended one."""
    declared = {
        name: parse_operation(getattr(task, "operation_type", None) or "unknown")
        for name, task in captioner.celery.tasks.items()
        if name.startswith("captioner.")
    }
    assert declared == TASKS


def test_only_the_platform_post_is_declared_unsafe_to_rerun(captioner: Captioner) -> None:
    """Posting twice would publish twice: ``captioner.post_to_platform`` says
    ``rerun_safe=False``; every other task may be requeued after an emergency."""
    unsafe = {
        name
        for name, task in captioner.celery.tasks.items()
        if name.startswith("captioner.") and getattr(task, "rerun_safe", True) is False
    }
    assert unsafe == {"captioner.post_to_platform"}
