"""A browser-like JSON client for the captioner: one cookie jar per person."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from typing import Any

from maintenance_demo.captioner.seed import Login


@dataclass
class Reply:
    """What the app answered."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The user-facing words of the reply (maintenance message, error or message)."""
        body = self.body
        text = body.get("message") or body.get("error") or body.get("title") or ""
        return str(text).strip().splitlines()[0] if text else ""


class Person:
    """Someone using the captioner over HTTP (JSON in, JSON out), with their own session."""

    def __init__(self, base_url: str, login: Login, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.login_info = login
        self.timeout = timeout
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    @property
    def name(self) -> str:
        """The username."""
        return self.login_info.username

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Reply:
        """One request; 4xx/5xx answers are replies too, not exceptions."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(req, timeout=self.timeout) as answer:
                return Reply(answer.status, _json(answer.read()), dict(answer.headers))
        except urllib.error.HTTPError as answer:
            return Reply(answer.code, _json(answer.read()), dict(answer.headers))

    def get(self, path: str) -> Reply:
        """GET ``path``."""
        return self.request("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Reply:
        """POST JSON to ``path``."""
        return self.request("POST", path, body or {})

    def log_in(self) -> Reply:
        """POST /login with the person's password."""
        info = self.login_info
        return self.post("/login", {"username": info.username, "password": info.password})

    def job(self, job_id: int) -> dict[str, Any]:
        """A job as the app shows it (``GET /jobs/<id>``)."""
        reply = self.get(f"/jobs/{job_id}")
        if reply.status != 200:
            raise RuntimeError(f"GET /jobs/{job_id} answered {reply.status}: {reply.text}")
        job: dict[str, Any] = reply.body["job"]
        return job


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"error": raw[:200].decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}
