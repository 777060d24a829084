"""The captioner's own tables: users, images, captions, jobs, platform connections and posts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from maintenance import OperationType


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the captioner's models."""


class User(Base):
    """Someone who logs in: role ``admin`` or ``user``."""

    __tablename__ = "captioner_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    display_name: Mapped[str] = mapped_column(String(120), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    settings_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    images: Mapped[list[Image]] = relationship(back_populates="owner")

    @property
    def is_admin(self) -> bool:
        """Whether this user is an administrator (read by the maintenance role resolver)."""
        return self.role == "admin"

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password``."""
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Whether ``password`` is this user's password."""
        return check_password_hash(self.password_hash, password)

    @property
    def settings(self) -> dict[str, Any]:
        """Preferences: ``platform`` and caption ``style``."""
        return {"platform": "instagram", "style": "friendly", **json.loads(self.settings_json)}

    @settings.setter
    def settings(self, value: dict[str, Any]) -> None:
        self.settings_json = json.dumps(value, sort_keys=True)


class Image(Base):
    """An uploaded image and what optimisation and analysis found."""

    __tablename__ = "captioner_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("captioner_users.id"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    optimized_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    analysis_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    analysis_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    owner: Mapped[User] = relationship(back_populates="images")
    captions: Mapped[list[Caption]] = relationship(back_populates="image")

    @property
    def analysis(self) -> dict[str, Any] | None:
        """The last analysis, if any."""
        return json.loads(self.analysis_json) if self.analysis_json else None


class Caption(Base):
    """A caption of an image for one platform, reviewed before it is published."""

    __tablename__ = "captioner_captions"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("captioner_images.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    platform: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft|approved|rejected
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    image: Mapped[Image] = relationship(back_populates="captions")


class Job(Base):
    """Background work a user started: one Celery task, its state and result."""

    __tablename__ = "captioner_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("captioner_users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    task_name: Mapped[str] = mapped_column(String(128))
    task_id: Mapped[str] = mapped_column(String(64), unique=True)
    #: queued | running | done | failed | cancelled | refused | interrupted
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def params(self) -> dict[str, Any]:
        """What the job was asked to do."""
        return dict(json.loads(self.params_json or "{}"))

    @property
    def result(self) -> Any:
        """What the job produced, if it finished."""
        return json.loads(self.result_json) if self.result_json else None


class PlatformConnection(Base):
    """A user's account on a social platform (fake platforms; real rows)."""

    __tablename__ = "captioner_platform_connections"
    __table_args__ = (UniqueConstraint("owner_id", "platform"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("captioner_users.id"))
    platform: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(120), default="")
    signature: Mapped[str] = mapped_column(String(120), default="")
    credential_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    credential_hint: Mapped[str | None] = mapped_column(String(8), nullable=True)
    is_active: Mapped[int] = mapped_column(Integer, default=0)
    last_test_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_test_ok: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_test_message: Mapped[str | None] = mapped_column(Text, nullable=True)

    def set_credential(self, token: str) -> None:
        """Keep a hash of the token and its last characters, never the token."""
        self.credential_hash = generate_password_hash(token)
        self.credential_hint = token[-4:]


class Post(Base):
    """A caption published on a platform (fake platforms; one row per publication)."""

    __tablename__ = "captioner_posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    caption_id: Mapped[int] = mapped_column(ForeignKey("captioner_captions.id"), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    remote_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


#: What a write to each table means to maintenance (the transaction guard's map).
MODEL_OPERATIONS: dict[type, OperationType] = {
    User: OperationType.USER_DATA_MODIFICATION,
    Image: OperationType.IMAGE_PROCESSING,
    Caption: OperationType.CAPTION_GENERATION,
    Job: OperationType.JOB_CREATION,
    PlatformConnection: OperationType.PLATFORM_OPERATIONS,
    Post: OperationType.PLATFORM_OPERATIONS,
}
