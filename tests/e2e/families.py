"""The plan's six operation families as the captioner exposes them: user requests, the task,
a job started before maintenance and its rows, and what an administrator does."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maintenance_demo.captioner.imaging import paint_png
from maintenance_demo.captioner.models import Caption, Image, Job, PlatformConnection, User
from sqlalchemy import select

from maintenance import OperationType
from tests.captioner.conftest import Captioner

from .conftest import Ids

Op = OperationType
Request = tuple[str, dict[str, Any]]
#: (captioner, the job's row) -> whether the job's side effect is in the database.
Effect = Callable[[Captioner, Job], bool]


@dataclass(frozen=True)
class Family:
    """One operation family of the plan, end to end."""

    plan: str
    operation: OperationType
    #: Everything a user may try in this family (each must be refused).
    requests: Callable[[Ids], list[Request]]
    #: The Celery task a publisher sends for this family, with its kwargs.
    task: Callable[[Ids], tuple[str, dict[str, Any]]]
    #: The job a user starts before maintenance, and the seconds per step it takes.
    before: Callable[[Ids], Request]
    step_seconds: float
    effect: Effect
    #: What an administrator does during maintenance, and what it leaves.
    admin: Callable[[Ids], Request]
    admin_effect: Effect

    @property
    def id(self) -> str:
        """The pytest id: the plan's task and the operation type."""
        return f"{self.plan}-{self.operation.value}"


def _scalar(captioner: Captioner, query: Any) -> Any:
    with captioner.db.sessions() as s:
        return s.scalar(query)


def _caption_of(captioner: Captioner, job: Job) -> bool:
    return bool(_scalar(captioner, select(Caption.id).where(Caption.job_id == job.id)))


def _captioned_for(platform: str) -> Effect:
    def check(captioner: Captioner, job: Job) -> bool:
        with captioner.db.sessions() as s:
            images = s.scalars(select(Image.id).where(Image.owner_id == job.owner_id)).all()
            done = s.scalars(
                select(Caption.image_id).where(
                    Caption.platform == platform, Caption.job_id == job.id
                )
            ).all()
        return bool(images) and sorted(done) == sorted(images)

    return check


def _exported(_captioner: Captioner, job: Job) -> bool:
    return job.result is not None and "approved" in job.result


def _connection_tested(captioner: Captioner, job: Job) -> bool:
    tested = _scalar(
        captioner,
        select(PlatformConnection.last_test_at).where(
            PlatformConnection.owner_id == job.owner_id,
            PlatformConnection.platform == "instagram",
        ),
    )
    return job.result == {"ok": True, "message": "connected to instagram as @alice.example"} and (
        tested is not None
    )


def _tested(_captioner: Captioner, job: Job) -> bool:
    return job.result is not None and "ok" in job.result


def _bulk_text(text: str) -> Effect:
    def check(captioner: Captioner, job: Job) -> bool:
        found = _scalar(
            captioner, select(Caption.text).where(Caption.id.in_(job.params["caption_ids"]))
        )
        return job.result == {"updated": 1} and found == text

    return check


def _signature(name: str) -> Effect:
    def check(captioner: Captioner, job: Job) -> bool:
        signature = _scalar(
            captioner,
            select(PlatformConnection.signature).where(PlatformConnection.owner_id == job.owner_id),
        )
        return signature == f"\u2014 {name}"

    return check


def _display_name(name: str) -> Effect:
    def check(captioner: Captioner, job: Job) -> bool:
        found = _scalar(captioner, select(User.display_name).where(User.id == job.owner_id))
        return found == name and job.result is not None and "connections" in job.result

    return check


def _analysed(captioner: Captioner, job: Job) -> bool:
    image = _scalar(captioner, select(Image).where(Image.id == job.params["image_id"]))
    return image is not None and image.analysis_count >= 1 and job.result == image.analysis


def _optimised(captioner: Captioner, job: Job) -> bool:
    size = _scalar(
        captioner, select(Image.optimized_size).where(Image.id == job.params["image_id"])
    )
    return size is not None and job.result is not None and job.result["after"] == size


_PNG = base64.b64encode(paint_png(12, 8, lambda x, y: (10 * x, 20 * y, 90))).decode()

FAMILIES = (
    Family(
        plan="3.1",
        operation=Op.CAPTION_GENERATION,
        requests=lambda i: [
            ("/caption/generate", {"image_id": i.image}),
            (f"/captions/{i.caption}/regenerate", {}),
        ],
        task=lambda i: ("captioner.generate_caption", {"job_id": 0, "image_id": i.image}),
        before=lambda i: ("/caption/generate", {"image_id": i.image}),
        step_seconds=1.5,
        effect=_caption_of,
        admin=lambda i: ("/caption/generate", {"image_id": i.image, "platform": "mastodon"}),
        admin_effect=_caption_of,
    ),
    Family(
        plan="3.2",
        operation=Op.JOB_CREATION,
        requests=lambda i: [("/jobs", {"kind": "export"}), ("/jobs", {"kind": "caption_all"})],
        task=lambda i: ("captioner.run_job", {"job_id": 0}),
        before=lambda i: ("/jobs", {"kind": "caption_all", "platform": "x"}),
        step_seconds=0.3,
        effect=_captioned_for("x"),
        admin=lambda i: ("/jobs", {"kind": "export"}),
        admin_effect=_exported,
    ),
    Family(
        plan="4.1",
        operation=Op.PLATFORM_OPERATIONS,
        requests=lambda i: [
            ("/platform/switch", {"platform": "x"}),
            ("/platform/test-connection", {"platform": "instagram"}),
            ("/platform/credentials", {"platform": "instagram", "handle": "a", "token": "t" * 12}),
            ("/platform/post", {"caption_id": i.caption}),
        ],
        task=lambda i: ("captioner.test_platform_connection", {"job_id": 0, "connection_id": 0}),
        before=lambda i: ("/platform/test-connection", {"platform": "instagram"}),
        step_seconds=1.5,
        effect=_connection_tested,
        admin=lambda i: ("/platform/test-connection", {"platform": "instagram"}),
        admin_effect=_tested,
    ),
    Family(
        plan="4.2",
        operation=Op.BATCH_OPERATIONS,
        requests=lambda i: [
            ("/review/batch", {"decision": "approve", "caption_ids": [i.caption]}),
            ("/review/bulk", {"caption_ids": [i.caption], "status": "approved"}),
        ],
        task=lambda i: ("captioner.bulk_update_captions", {"job_id": 0, "caption_ids": []}),
        before=lambda i: ("/review/bulk", {"caption_ids": [i.caption], "text": "Before #e2e"}),
        step_seconds=1.5,
        effect=_bulk_text("Before #e2e"),
        admin=lambda i: ("/review/bulk", {"caption_ids": [i.caption], "text": "By admin #e2e"}),
        admin_effect=_bulk_text("By admin #e2e"),
    ),
    Family(
        plan="5.1",
        operation=Op.USER_DATA_MODIFICATION,
        requests=lambda i: [
            ("/profile", {"display_name": "Refused"}),
            ("/settings", {"platform": "x", "style": "friendly"}),
            ("/password", {"current_password": "x", "new_password": "y" * 10}),
        ],
        task=lambda i: ("captioner.sync_profile", {"job_id": 0, "user_id": i.admin}),
        before=lambda i: ("/profile", {"display_name": "Alice Before"}),
        step_seconds=1.5,
        effect=_signature("Alice Before"),
        admin=lambda i: ("/profile", {"display_name": "Ada During"}),
        admin_effect=_display_name("Ada During"),
    ),
    Family(
        plan="5.2",
        operation=Op.IMAGE_PROCESSING,
        requests=lambda i: [
            ("/images/upload", {"filename": "e2e.png", "data": _PNG}),
            (f"/images/{i.image}/optimize", {}),
            (f"/images/{i.image}/analyze", {}),
        ],
        task=lambda i: ("captioner.analyze_image", {"job_id": 0, "image_id": i.image}),
        before=lambda i: (f"/images/{i.image}/analyze", {}),
        step_seconds=1.5,
        effect=_analysed,
        admin=lambda i: (f"/images/{i.image}/optimize", {}),
        admin_effect=_optimised,
    ),
)
