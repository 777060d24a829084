"""One captioner fleet per module: the web app (Flask test client), a real prefork
``celery worker``, real Redis and SQLite; maintenance is off between tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from maintenance_demo.captioner.models import Caption, Image, User
from maintenance_demo.captioner.seed import ADMIN, USER
from sqlalchemy import func, select

from maintenance import build_service
from tests.captioner.conftest import (
    Captioner,
    build_captioner,
    captioner_worker_process,
    close_captioner,
)
from tests.support import fast_settings, redis_prefix


@dataclass(frozen=True)
class Ids:
    """Rows the tests act on: alice's first image and a caption of it, the admin's id."""

    image: int
    caption: int
    admin: int


@pytest.fixture(scope="module")
def module_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix for the module's fleet; its keys are deleted afterwards."""
    with redis_prefix(redis_url) as value:
        yield value


@pytest.fixture(scope="module")
def fleet(
    redis_url: str, module_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Captioner]:
    """The captioner and one real prefork worker (2 processes), shared by the module."""
    directory = tmp_path_factory.mktemp("e2e")
    settings = fast_settings(redis_url, f"sqlite:///{directory / 'control.db'}", module_prefix)
    service = build_service(settings, kind="web").start()
    captioner = build_captioner(service, redis_url, module_prefix, directory)
    try:
        with captioner_worker_process(captioner, directory / "worker.log", concurrency=2):
            yield captioner
    finally:
        close_captioner(captioner)
        service.close()
        service.db.dispose()


@pytest.fixture(scope="module")
def ids(fleet: Captioner) -> Ids:
    """Alice's first image with one draft caption, and the admin's user id."""
    with fleet.db.sessions() as s:
        image = s.scalar(
            select(func.min(Image.id)).join(User).where(User.username == USER.username)
        )
        admin = s.scalar(select(User.id).where(User.username == ADMIN.username))
        caption = Caption(image_id=image, text="A first draft #e2e", platform="instagram")
        s.add(caption)
        s.commit()
        assert image is not None and admin is not None
        return Ids(image=image, caption=caption.id, admin=admin)


@pytest.fixture(autouse=True)
def maintenance_off(fleet: Captioner) -> Iterator[None]:
    """Every test starts and ends with maintenance off and no task time."""
    fleet.app.config["CAPTIONER_TASK_DURATION"] = 0.0
    assert not fleet.service.get_maintenance_status().is_active
    yield
    if fleet.service.get_maintenance_status().is_active:
        fleet.service.disable_maintenance("e2e-teardown", wait=5)
    fleet.app.config["CAPTIONER_TASK_DURATION"] = 0.0
