"""The captioner over HTTP (Flask test client) with the maintenance library wired in:
real Redis broker, real SQLite, no worker (messages are counted on the broker)."""

from __future__ import annotations

import base64

from flask.testing import FlaskClient
from maintenance_demo.captioner.imaging import paint_png
from maintenance_demo.captioner.models import Caption, Image, Job, User
from maintenance_demo.captioner.seed import ADMIN, USER
from sqlalchemy import func, select

from .conftest import Captioner


def _count(captioner: Captioner, model: type) -> int:
    with captioner.db.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _alice_image(captioner: Captioner) -> int:
    with captioner.db.sessions() as s:
        return int(s.scalar(select(Image.id).order_by(Image.id)) or 0)


def test_login_checks_the_hashed_password(captioner: Captioner) -> None:
    """Wrong password: 401; right one: logged in; passwords are stored hashed."""
    client = captioner.app.test_client()
    assert client.post("/login", json={"username": "alice", "password": "nope"}).status_code == 401
    assert client.get("/jobs", headers={"Accept": "application/json"}).status_code == 401
    reply = client.post("/login", json={"username": USER.username, "password": USER.password})
    assert reply.json["user"]["role"] == "user"
    assert client.get("/jobs", headers={"Accept": "application/json"}).status_code == 200
    with captioner.db.sessions() as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "alice"))
    assert stored and USER.password not in stored


def test_pages_render_with_the_banner_slot(captioner: Captioner, user_client: FlaskClient) -> None:
    """Every page has the maintenance banner slot; during maintenance it shows the reason."""
    for path in ("/", "/images", "/captions", "/review", "/jobs", "/platform", "/profile"):
        reply = user_client.get(path)
        assert reply.status_code == 200, path
        assert 'id="maintenance-banner"' in reply.get_data(as_text=True)
    captioner.service.enable_maintenance("Database upgrade", "30m", enabled_by="ops")
    page = captioner.client(ADMIN).get("/").get_data(as_text=True)
    assert "Database upgrade" in page


def test_upload_then_generate_publishes_one_task(
    captioner: Captioner, user_client: FlaskClient
) -> None:
    """Upload stores the image; generation records a queued job and publishes one message."""
    png = paint_png(30, 20, lambda x, y: (200, 30, 30))
    reply = user_client.post(
        "/images/upload", json={"filename": "red.png", "data": base64.b64encode(png).decode()}
    )
    assert reply.status_code == 201
    image = reply.json["image"]
    assert (image["width"], image["height"], image["size_bytes"]) == (30, 20, len(png))
    bad = user_client.post("/images/upload", json={"filename": "x.txt", "data": "aGVsbG8="})
    assert bad.status_code == 415

    reply = user_client.post("/caption/generate", json={"image_id": image["id"]})
    assert reply.status_code == 202
    job = reply.json["job"]
    assert job["status"] == "queued"
    assert captioner.queued() == 1
    with captioner.db.sessions() as s:
        stored = s.get(Job, job["id"])
        assert stored is not None and stored.task_name == "captioner.generate_caption"


def test_maintenance_refuses_users_and_lets_admins_work(
    captioner: Captioner, user_client: FlaskClient, admin_client: FlaskClient
) -> None:
    """During NORMAL maintenance a user's generate is a 503 that creates nothing and
    publishes nothing; the admin's goes through the HTTP gate and the publish gate."""
    image_id = _alice_image(captioner)
    captioner.service.enable_maintenance("Database upgrade", "30m", enabled_by="ops")
    refused = user_client.post("/caption/generate", json={"image_id": image_id})
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    assert _count(captioner, Job) == 0
    assert captioner.queued() == 0

    accepted = admin_client.post("/caption/generate", json={"image_id": image_id})
    assert accepted.status_code == 202, accepted.get_data(as_text=True)
    assert _count(captioner, Job) == 1
    assert captioner.queued() == 1


def test_non_admin_logins_are_refused_while_logins_are_blocked(captioner: Captioner) -> None:
    """Maintenance blocks non-admin logins (503 with the reason); admins still log in."""
    captioner.service.enable_maintenance("Database upgrade", "30m", enabled_by="ops")
    client = captioner.app.test_client()
    refused = client.post("/login", json={"username": USER.username, "password": USER.password})
    assert refused.status_code == 503
    assert "Database upgrade" in refused.get_data(as_text=True)
    admin = client.post("/login", json={"username": ADMIN.username, "password": ADMIN.password})
    assert admin.status_code == 200


def test_batch_review_and_cancel_write_the_database(
    captioner: Captioner, user_client: FlaskClient
) -> None:
    """Batch review updates every selected caption at once; a queued job can be cancelled once."""
    image_id = _alice_image(captioner)
    with captioner.db.sessions() as s:
        s.add_all([Caption(image_id=image_id, text=f"c{i}", platform="x") for i in range(3)])
        s.commit()
        ids = list(s.scalars(select(Caption.id)))
    reply = user_client.post("/review/batch", json={"caption_ids": ids[:2], "decision": "approve"})
    assert reply.json["updated"] == 2
    with captioner.db.sessions() as s:
        assert sorted(s.scalars(select(Caption.status))) == ["approved", "approved", "draft"]

    job = user_client.post("/jobs", json={"kind": "export"}).json["job"]
    assert user_client.post(f"/jobs/{job['id']}/cancel", json={}).json["job"]["status"] == (
        "cancelled"
    )
    assert user_client.post(f"/jobs/{job['id']}/cancel", json={}).status_code == 409


def test_form_posts_need_the_csrf_token(captioner: Captioner, user_client: FlaskClient) -> None:
    """A browser form post without the session's token is refused before anything runs."""
    reply = user_client.post("/settings", data={"platform": "x", "style": "concise"})
    assert reply.status_code == 400
    user_client.get("/profile")
    with user_client.session_transaction() as session:
        token = session["_csrf"]
    reply = user_client.post(
        "/settings", data={"platform": "x", "style": "concise", "csrf_token": token}
    )
    assert reply.status_code == 302
    with captioner.db.sessions() as s:
        alice = s.scalar(select(User).where(User.username == "alice"))
        assert alice is not None and alice.settings["platform"] == "x"


def test_admin_panel_is_mounted_for_admins_only(
    captioner: Captioner, admin_client: FlaskClient, user_client: FlaskClient
) -> None:
    """``/admin/maintenance/`` is the maintenance admin panel: the admin sees it (and a link
    from the captioner's admin page), alice gets 403, an anonymous visitor is sent to log in."""
    panel = admin_client.get("/admin/maintenance/")
    assert panel.status_code == 200
    assert "maintenance" in panel.get_data(as_text=True).lower()
    assert 'href="/admin/maintenance/"' in admin_client.get("/admin/").get_data(as_text=True)
    assert user_client.get("/admin/maintenance/").status_code == 403
    anonymous = captioner.app.test_client().get("/admin/maintenance/")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login?next=")
