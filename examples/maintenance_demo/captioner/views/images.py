"""Images: upload, list, view, and optimisation / analysis as Celery jobs."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request
from sqlalchemy import select
from werkzeug.utils import secure_filename

from ..auth import current_user, login_required
from ..imaging import UnsupportedImage, probe
from ..models import Image
from .common import db, done, enqueue, fail, owned, queued, wants_json

bp = Blueprint("images", __name__)


@bp.get("/images")
@login_required
def index() -> Any:
    """The user's images and the upload form."""
    user = current_user()
    assert user is not None
    images = (
        db().scalars(select(Image).where(Image.owner_id == user.id).order_by(Image.id.desc())).all()
    )
    if wants_json():
        return jsonify({"images": [_image_data(i) for i in images]})
    return render_template("captioner/images.html", images=images)


@bp.get("/images/<int:image_id>")
@login_required
def detail(image_id: int) -> Any:
    """One image with its captions and analysis."""
    user = current_user()
    assert user is not None
    image = owned(Image, image_id, user)
    if wants_json():
        return jsonify({"image": _image_data(image)})
    return render_template("captioner/image.html", image=image)


@bp.get("/images/<int:image_id>/raw")
@login_required
def raw(image_id: int) -> Any:
    """The image bytes."""
    user = current_user()
    assert user is not None
    image = owned(Image, image_id, user)
    return Response(image.data, mimetype=image.content_type)


def _uploaded() -> tuple[str, bytes] | None:
    if request.is_json:
        body = request.get_json(silent=True) or {}
        try:
            return str(body.get("filename") or "upload"), base64.b64decode(body.get("data", ""))
        except (binascii.Error, ValueError):
            return None
    file = request.files.get("image")
    if file is None or not file.filename:
        return None
    return file.filename, file.read()


@bp.post("/images/upload")
@login_required
def upload_image() -> Any:
    """Store an uploaded PNG, JPEG or GIF (file field ``image``, or JSON base64 ``data``)."""
    user = current_user()
    assert user is not None
    found = _uploaded()
    if found is None:
        return fail("Choose an image file to upload.", "images.index")
    filename, data = found
    try:
        info = probe(data)
    except UnsupportedImage as exc:
        return fail(f"{exc}.", "images.index", code=415)
    image = Image(
        owner_id=user.id,
        filename=secure_filename(filename) or "upload",
        content_type=info.content_type,
        width=info.width,
        height=info.height,
        size_bytes=len(data),
        data=data,
    )
    session = db()
    session.add(image)
    session.commit()
    return done(
        f"Uploaded {image.filename} ({info.width}\u00d7{info.height}).",
        "images.detail",
        code=201,
        data={"image": _image_data(image)},
        image_id=image.id,
    )


@bp.post("/images/<int:image_id>/optimize")
@login_required
def optimize_image(image_id: int) -> Any:
    """Queue optimisation (Celery task ``captioner.optimize_image``)."""
    user = current_user()
    assert user is not None
    image = owned(Image, image_id, user)
    job = enqueue(
        user, "image_optimization", "captioner.optimize_image", image_id=image.id, total=1
    )
    return queued(job, f"Optimisation queued (job {job.id}).")


@bp.post("/images/<int:image_id>/analyze")
@login_required
def analyze_image(image_id: int) -> Any:
    """Queue analysis (Celery task ``captioner.analyze_image``)."""
    user = current_user()
    assert user is not None
    image = owned(Image, image_id, user)
    job = enqueue(user, "image_analysis", "captioner.analyze_image", image_id=image.id, total=1)
    return queued(job, f"Analysis queued (job {job.id}).")


def _image_data(image: Image) -> dict[str, Any]:
    return {
        "id": image.id,
        "filename": image.filename,
        "content_type": image.content_type,
        "width": image.width,
        "height": image.height,
        "size_bytes": image.size_bytes,
        "optimized_size": image.optimized_size,
        "analysis": image.analysis,
        "analysis_count": image.analysis_count,
    }
