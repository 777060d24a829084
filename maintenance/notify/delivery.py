"""Posting outbox rows: signed HTTP, capped and jittered exponential backoff, leases.

A ``Deliverer`` pass claims due rows, posts each once and records the outcome. After
a failure, the endpoint's other claimed rows wait with it (one probe per backoff
step, not one request per queued event). Nothing here touches Celery: notifications
go out while every Celery publish is refused.
"""

from __future__ import annotations

import json
import logging
import random
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..domain.status import utcnow
from ..settings import Settings
from ..store.database import Database
from . import outbox
from .endpoints import Endpoint
from .payloads import encode, slack_body
from .signing import SIGNATURE_HEADER, signature_header

log = logging.getLogger("maintenance.notify")

USER_AGENT = "maintenance-notify/1"
EVENT_HEADER = "Maintenance-Event"
KEY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "Maintenance-Delivery-Attempt"
MAX_BATCH = 50


def backoff(attempt: int, base: float, cap: float, rand: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...).

    ``base * 2**(attempt-1)``, capped at ``cap``, then jittered into its upper half
    (``rand`` in [0, 1)): retries of many nodes and rows spread out, and the wait
    never exceeds ``cap``.
    """
    exponent = min(max(attempt, 1) - 1, 62)
    ceiling = min(cap, base * (2.0**exponent))
    return ceiling * (0.5 + 0.5 * rand)


@dataclass(frozen=True)
class Outcome:
    """What one POST came to."""

    ok: bool
    error: str | None = None
    retry_after: float | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect is a misconfigured URL: following it would re-send (or drop) the
    # signed body somewhere not configured.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def post(endpoint: Endpoint, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
    """POST ``body``; 2xx is delivered, anything else (or no answer) is a failure.

    Errors name the status or the exception, never the URL (it may hold a token).
    """
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    if endpoint.authorization:
        all_headers["Authorization"] = endpoint.authorization
    request = urllib.request.Request(endpoint.url, data=body, headers=all_headers, method="POST")
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(4096)
            if 200 <= response.status < 300:
                return Outcome(ok=True)
            return Outcome(ok=False, error=f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        return Outcome(ok=False, error=f"HTTP {exc.code}", retry_after=_retry_after(exc.headers))
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
        return Outcome(ok=False, error=_scrub(str(text), endpoint))
    except TimeoutError:
        return Outcome(ok=False, error=f"no answer within {timeout:g} s")
    except (OSError, ValueError) as exc:
        return Outcome(ok=False, error=_scrub(f"{type(exc).__name__}: {exc}", endpoint))


def _scrub(text: str, endpoint: Endpoint) -> str:
    return text.replace(endpoint.url, endpoint.label)


@dataclass
class PassReport:
    """What one pass did."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    given_up: int = 0
    postponed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: PassReport) -> None:
        """Add another pass's numbers to these."""
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.retrying += other.retrying
        self.given_up += other.given_up
        self.postponed += other.postponed
        self.errors.extend(other.errors)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "claimed": self.claimed,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "given_up": self.given_up,
            "postponed": self.postponed,
            "errors": list(self.errors),
        }


Sender = Callable[[Endpoint, bytes, dict[str, str], float], Outcome]


class Deliverer:
    """Claims due outbox rows for the endpoints this process knows and posts them."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        endpoints: Sequence[Endpoint],
        *,
        send: Sender = post,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.db = db
        self.settings = settings
        self.endpoints = {e.id: e for e in endpoints}
        self.send = send
        self.rand = rand
        # Every claimed row gets its full timeout within the lease.
        per_row = max(settings.webhook_timeout, 0.1) + 1.0
        self.batch = max(1, min(MAX_BATCH, int(settings.webhook_lease // per_row)))

    def run_once(self, now: datetime | None = None) -> PassReport:
        """Claim up to one batch of due rows and post each (an endpoint that fails is
        not tried again in this pass)."""
        report = PassReport()
        claimed = outbox.claim(
            self.db,
            self.endpoints,
            limit=self.batch,
            lease=self.settings.webhook_lease,
            now=now,
        )
        report.claimed = len(claimed)
        held: set[str] = set()
        for index, delivery in enumerate(claimed):
            if delivery.endpoint in held:
                continue
            retry_at = self._deliver(delivery, report)
            if retry_at is not None:
                held.add(delivery.endpoint)
                rest = [d for d in claimed[index + 1 :] if d.endpoint == delivery.endpoint]
                report.postponed += outbox.postpone(self.db, rest, retry_at)
        return report

    def _deliver(self, delivery: outbox.Delivery, report: PassReport) -> datetime | None:
        """Post one row; the time its endpoint may be tried again when it failed."""
        endpoint = self.endpoints[delivery.endpoint]
        attempt = delivery.attempts + 1
        body = self._body(endpoint, delivery)
        headers = {
            EVENT_HEADER: delivery.type,
            KEY_HEADER: delivery.key,
            ATTEMPT_HEADER: str(attempt),
        }
        if self.settings.webhook_secret:
            headers[SIGNATURE_HEADER] = signature_header(self.settings.webhook_secret, body)
        outcome = self.send(endpoint, body, headers, self.settings.webhook_timeout)
        if outcome.ok:
            outbox.mark_delivered(self.db, delivery)
            report.delivered += 1
            return None
        return self._failed(delivery, endpoint, attempt, outcome, report)

    def _failed(
        self,
        delivery: outbox.Delivery,
        endpoint: Endpoint,
        attempt: int,
        outcome: Outcome,
        report: PassReport,
    ) -> datetime:
        s = self.settings
        now = utcnow()
        error = outcome.error or "failed"
        wait = backoff(attempt, s.webhook_backoff, s.webhook_backoff_max, self.rand())
        if outcome.retry_after is not None:
            wait = min(s.webhook_backoff_max, max(wait, outcome.retry_after))
        retry_at: datetime | None = now + timedelta(seconds=wait)
        since = delivery.failing_since or now
        if (now - since).total_seconds() >= s.webhook_retry_for:
            retry_at = None
        outbox.mark_failed(self.db, delivery, error, retry_at=retry_at, now=now)
        report.errors.append(f"{endpoint.label}: {error}")
        if retry_at is None:
            report.given_up += 1
            log.error(
                "notification %s (%s) to %s given up after %d attempts: %s",
                delivery.key,
                delivery.type,
                endpoint.label,
                attempt,
                error,
            )
            return now + timedelta(seconds=wait)
        report.retrying += 1
        log.warning(
            "notification %s (%s) to %s failed (attempt %d): %s; retrying in %.1f s",
            delivery.key,
            delivery.type,
            endpoint.label,
            attempt,
            error,
            wait,
        )
        return retry_at

    @staticmethod
    def _body(endpoint: Endpoint, delivery: outbox.Delivery) -> bytes:
        if not endpoint.slack:
            return delivery.payload_json.encode()
        return encode(slack_body(json.loads(delivery.payload_json)))
