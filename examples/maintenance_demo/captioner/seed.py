"""Demo data: an admin, a user with known passwords, a few generated images (idempotent).

``python -m maintenance_demo.captioner.seed`` seeds the database of the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from maintenance.integrity import allow_writes

from .db import CaptionerDatabase, database_url
from .imaging import paint_png
from .models import Image, PlatformConnection, User


@dataclass(frozen=True)
class Login:
    """A demo account."""

    username: str
    password: str
    role: str
    display_name: str


ADMIN = Login("admin", "admin-demo-pass", "admin", "Ada Admin")
USER = Login("alice", "alice-demo-pass", "user", "Alice Example")
LOGINS = (ADMIN, USER)


def _gradient(
    top: tuple[int, int, int], bottom: tuple[int, int, int], height: int
) -> Callable[[int, int], tuple[int, int, int]]:
    def colour(_x: int, y: int) -> tuple[int, int, int]:
        t = y / max(1, height - 1)
        r, g, b = (round(a + (c - a) * t) for a, c in zip(top, bottom, strict=True))
        return r, g, b

    return colour


#: filename, width, height, top colour, bottom colour
IMAGES = (
    ("sunset.png", 96, 64, (245, 150, 40), (120, 50, 160)),
    ("sea.png", 96, 64, (40, 90, 210), (30, 150, 150)),
    ("forest.png", 64, 96, (40, 150, 60), (110, 75, 40)),
    ("snow.png", 80, 80, (245, 245, 245), (200, 200, 205)),
    ("night.png", 96, 64, (10, 12, 30), (40, 60, 140)),
)


def seed(db: CaptionerDatabase) -> dict[str, int]:
    """Create the schema, the demo accounts and (for the user) the demo images, once."""
    db.create_schema()
    created = {"users": 0, "images": 0}
    # Seeding is an operator action: it may run while maintenance is in force.
    with allow_writes("demo seed"), db.sessions() as session:
        users: dict[str, User] = {}
        for login in LOGINS:
            user = session.scalar(select(User).where(User.username == login.username))
            if user is None:
                user = User(
                    username=login.username, role=login.role, display_name=login.display_name
                )
                user.set_password(login.password)
                session.add(user)
                created["users"] += 1
            users[login.username] = user
        session.flush()
        owner = users[USER.username]
        for name, width, height, top, bottom in IMAGES:
            exists = session.scalar(
                select(Image.id).where(Image.owner_id == owner.id, Image.filename == name)
            )
            if exists is None:
                data = paint_png(width, height, _gradient(top, bottom, height))
                session.add(
                    Image(
                        owner_id=owner.id,
                        filename=name,
                        content_type="image/png",
                        width=width,
                        height=height,
                        size_bytes=len(data),
                        data=data,
                    )
                )
                created["images"] += 1
        has_connection = session.scalar(
            select(PlatformConnection.id).where(PlatformConnection.owner_id == owner.id)
        )
        if has_connection is None:
            connection = PlatformConnection(
                owner_id=owner.id, platform="instagram", handle="alice.example", is_active=1
            )
            connection.set_credential("demo-token-0001")
            session.add(connection)
        session.commit()
    return created


def main() -> None:
    """Seed the environment's captioner database and print the logins."""
    db = CaptionerDatabase(database_url())
    created = seed(db)
    print(f"seeded {created['users']} user(s) and {created['images']} image(s) in {db.url}")
    for login in LOGINS:
        print(f"  {login.role:<5} {login.username} / {login.password}")
    db.dispose()


if __name__ == "__main__":
    main()
