"""Helpers every blueprint uses: the request's session, input, and answers for HTML and JSON."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, jsonify, redirect, request, url_for
from sqlalchemy.orm import Session

from ..auth import current_user
from ..auth import wants_json as wants_json  # re-exported: auth.py cannot import the views
from ..extension import CaptionerExtension
from ..jobs import start_job
from ..models import Job, User


def ext() -> CaptionerExtension:
    """This app's ``CaptionerExtension``."""
    found: CaptionerExtension = current_app.extensions["captioner"]
    return found


def db() -> Session:
    """The request's database session."""
    return ext().session()


def form() -> dict[str, Any]:
    """The submitted fields (JSON body or form)."""
    if request.is_json:
        data = request.get_json(silent=True)
        return dict(data) if isinstance(data, dict) else {}
    return {k: vs[0] if len(vs) == 1 else vs for k, vs in request.form.lists()}


def ids(value: Any) -> list[int]:
    """A list of ids from a JSON list, a form multi-value or a comma-separated string."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    try:
        return [int(v) for v in items if str(v).strip()]
    except ValueError:
        abort(400, "ids must be integers")


def done(message: str, endpoint: str, *, code: int = 200, data: Any = None, **values: Any) -> Any:
    """Success: JSON ``{"ok": true, ...}`` or a flash message and a redirect."""
    if wants_json():
        return jsonify({"ok": True, "message": message, **(data or {})}), code
    flash(message, "ok")
    return redirect(url_for(endpoint, **values))


def fail(message: str, endpoint: str, *, code: int = 400, **values: Any) -> Any:
    """Bad input: JSON error or a flash message and a redirect."""
    if wants_json():
        return jsonify({"ok": False, "error": message}), code
    flash(message, "error")
    return redirect(url_for(endpoint, **values))


def me() -> User:
    """The logged-in user, loaded in the request's session (for changes)."""
    user = current_user()
    assert user is not None
    found = db().get(User, user.id)
    assert found is not None
    return found


def owned(model: Any, object_id: int, user: User) -> Any:
    """Row ``object_id`` of ``model`` if ``user`` owns it (admins own everything), else 404."""
    found = db().get(model, object_id)
    if found is None or (not user.is_admin and getattr(found, "owner_id", user.id) != user.id):
        abort(404)
    return found


def enqueue(
    user: User,
    kind: str,
    task: str,
    *,
    params: dict[str, Any] | None = None,
    total: int = 0,
    timed: bool = True,
    **task_kwargs: Any,
) -> Job:
    """Start a job of ``kind`` running Celery task ``task`` for ``user``; ``params``
    (default: the task's arguments) are what the job page shows."""
    if params is None:
        params = dict(task_kwargs)
    if timed:
        task_kwargs.setdefault("duration", float(current_app.config["CAPTIONER_TASK_DURATION"]))
    return start_job(
        db(), ext().celery, user, kind, task, params=params, total=total, **task_kwargs
    )


def job_data(job: Job) -> dict[str, Any]:
    """A job as JSON."""
    return {
        "job": {
            "id": job.id,
            "kind": job.kind,
            "task_id": job.task_id,
            "status": job.status,
            "progress": job.progress,
            "total": job.total,
            "result": job.result,
            "error": job.error,
            "runs": job.runs,
        }
    }


def queued(job: Job, message: str) -> Any:
    """A job was queued: 202 with the job as JSON, or a flash message and the job's page."""
    return done(message, "jobs.job_detail", code=202, data=job_data(job), job_id=job.id)
