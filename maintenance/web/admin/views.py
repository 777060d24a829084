"""The panel's views: the page, the enable/disable forms, the live consistency check, the
dashboard data and stored reports. Every view runs after the admin check."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from flask import Response, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ...commands import Actor, Outcome
from ...commands.disable import disable as disable_command
from ...commands.enable import enable as enable_command
from ...domain.enable_request import EnableRequest, limits
from ...domain.modes import MaintenanceMode
from ...errors import (
    ApiError,
    ConflictError,
    CsrfError,
    NotAuthorized,
    NotFound,
    StoreUnavailable,
    ValidationError,
)
from ...fencing import ActivationResult
from ...reports import load_report
from ...reports import render as render_report
from ..guards import check_same_origin, json_response
from ..identity import WebIdentity
from ..payloads import admin_status
from . import notices
from .access import REPORT_CSP
from .csrf import FIELD as CSRF_FIELD
from .csrf import CsrfProtect
from .forms import (
    MODES,
    EnableForm,
    FormResult,
    blockable,
    parse_disable,
    parse_enable,
    unblockable,
)
from .history import HistoryQuery, history_view, parse_query
from .page import page_config
from .preflight import CheckContext, Finding, run_checks, warnings_of
from .snapshot import build_snapshot
from .timefmt import human_seconds, iso_minutes, iso_seconds

if TYPE_CHECKING:
    from ...domain.status import MaintenanceStatus
    from ...service import EnhancedMaintenanceModeService
    from ..state import WebState
    from .config import AdminConfig

log = logging.getLogger("maintenance.web.admin")
REPORT_FORMATS = {"html": "text/html", "md": "text/markdown", "json": "application/json"}


class AdminViews:
    """The views of one app's panel, bound to its service, maintenance state and settings."""

    def __init__(
        self,
        service: EnhancedMaintenanceModeService,
        web: WebState,
        config: AdminConfig,
        secret: str,
    ) -> None:
        self.service = service
        self.web = web
        self.config = config
        self.csrf = CsrfProtect(secret, config.csrf_ttl)

    # -- helpers -------------------------------------------------------------------
    def who(self) -> WebIdentity:
        """The (already admin-checked) caller."""
        return self.web.identity()

    def _check_form_origin(self) -> None:
        try:
            check_same_origin(request, self.web.config.trusted_origins)
        except ApiError as exc:
            raise CsrfError(exc.body["message"]) from None
        self.csrf.check(request)

    def _defaults(self) -> dict[str, Any]:
        status = self.service.status
        web = self.web.config
        return {
            "reason": (status.reason or "") if status.is_active else "",
            "duration": _remaining(status),
            "mode": status.mode.value if status.is_active else MaintenanceMode.NORMAL.value,
            "scope": "default",
            "operations": [],
            "critical_admin_only": status.critical_admin_only,
            "block_login": self.service.settings.block_login,
            "invalidate_sessions": web.invalidate_on_enable,
            "acknowledge_warnings": False,
        }

    def render_panel(
        self,
        *,
        enable: FormResult | None = None,
        disable: FormResult | None = None,
        findings: list[Finding] | None = None,
        code: int = 200,
    ) -> Response:
        """The panel page, optionally with a submitted form's values, errors and findings."""
        status = self.service.get_maintenance_status()
        try:
            history = parse_query(request.args)
        except ValidationError:  # the forms' posts: their URL carries no history page
            history = HistoryQuery()
        snapshot = build_snapshot(
            self.service, self.config, self.web.sessions, status=status, history=history
        )
        findings = findings or []
        body = render_template(
            "maintenance_admin/panel.html",
            who=self.who(),
            status=status,
            status_view=snapshot["status"],
            enable_values=enable.values if enable else self._defaults(),
            enable_errors=enable.errors if enable else {},
            disable_values=disable.values if disable else {"requeue": True, "note": ""},
            disable_errors=disable.errors if disable else {},
            findings=findings,
            notices=notices.unpack(),
            needs_ack=bool(warnings_of(findings)),
            blockable=blockable(self.service.operations),
            unblockable=unblockable(self.service.operations),
            modes=MODES,
            csrf_field=CSRF_FIELD,
            csrf_token=self.csrf.token(),
            page=page_config(self.web.config, self.config, snapshot, self.service.operations),
            emergency_phrase=self.config.emergency_phrase,
            limits=limits(),
            human_seconds=human_seconds,
            iso_minutes=iso_minutes,
            iso_seconds=iso_seconds,
            history=snapshot["history"],
        )
        return Response(body, code, mimetype="text/html")

    def _findings(self, req: EnableRequest) -> list[Finding]:
        ctx = CheckContext(
            service=self.service,
            request=req,
            who=self.who(),
            current=self.service.status,
            sessions=self.web.sessions,
        )
        return run_checks(ctx)

    def _refused(self, exc: CsrfError) -> Response:
        log.warning("admin form refused (%s): %s", request.path, exc)
        body = render_template("maintenance_admin/refused.html", message=str(exc))
        return Response(body, 403, mimetype="text/html")

    # -- views -----------------------------------------------------------------------
    def panel(self) -> Response:
        """GET: the control panel and dashboard (``?history_offset=&history_kind=``: the
        history page shown)."""
        try:
            parse_query(request.args)
        except ValidationError as exc:
            body = render_template("maintenance_admin/refused.html", message=str(exc))
            return Response(body, 400, mimetype="text/html")
        return self.render_panel()

    def enable(self) -> BaseResponse:
        """POST: enable (or change) maintenance from the form."""
        try:
            self._check_form_origin()
        except CsrfError as exc:
            return self._refused(exc)
        who = self.who()
        current = self.service.status
        form = parse_enable(
            request.form,
            emergency_phrase=self.config.emergency_phrase,
            actor=_actor(who),
            operations=self.service.operations,
            in_emergency=current.is_active and current.mode is MaintenanceMode.EMERGENCY,
        )
        if not form.ok:
            flash("Nothing was changed: fix the fields marked below.", "error")
            return self.render_panel(enable=form, code=400)
        checked: EnableForm = form.request
        req = checked.request
        findings = self._findings(req)
        if warnings_of(findings) and not checked.acknowledged:
            flash("Nothing was changed yet: read the warnings and confirm.", "warning")
            return self.render_panel(enable=form, findings=findings, code=409)
        try:
            outcome = enable_command(
                self.service, _command_actor(who), req, invalidate=self._invalidator()
            )
        except NotAuthorized as exc:
            form.errors["form"] = str(exc)
            flash("Nothing was changed: you may not change maintenance now.", "error")
            return self.render_panel(enable=form, code=403)
        except StoreUnavailable as exc:
            form.errors["form"] = str(exc)
            flash("Nothing was changed: the control plane's store is unavailable.", "error")
            return self.render_panel(enable=form, code=503)
        except ValidationError as exc:
            form.errors[exc.field or "form"] = str(exc)
            flash("Nothing was changed: fix the fields marked below.", "error")
            return self.render_panel(enable=form, code=400)
        except ConflictError as exc:
            form.errors["form"] = (
                f"Someone changed maintenance meanwhile (now version {exc.current_version}). "
                "Review the current status above and save again."
            )
            flash("Nothing was changed: the status moved on.", "error")
            return self.render_panel(enable=form, code=409)
        return self._after_post(_outcome_messages(outcome, _enabled_message(outcome)))

    def disable(self) -> BaseResponse:
        """POST: end maintenance, with or without requeueing held jobs."""
        try:
            self._check_form_origin()
        except CsrfError as exc:
            return self._refused(exc)
        form = parse_disable(request.form)
        if not form.ok:
            flash("Maintenance is still on: fix the fields marked below.", "error")
            return self.render_panel(disable=form, code=400)
        try:
            outcome = disable_command(
                self.service,
                _command_actor(self.who()),
                requeue=form.request.requeue,
                reason=form.request.note,
            )
        except (ConflictError, NotAuthorized, StoreUnavailable) as exc:
            return self._after_post([("error", f"Nothing was changed: {exc}.")])
        result = outcome.value
        messages = _outcome_messages(outcome, outcome.summary)
        report_id = result.details.get("report_id")
        if report_id:
            messages.append(
                ("info", f"Rehearsal report {report_id} stored: {result.details.get('verdict')}.")
            )
        return self._after_post(messages)

    def _invalidator(self) -> Any:
        manager = self.web.sessions
        return manager.invalidate_non_admin_sessions if manager is not None else None

    @staticmethod
    def _after_post(messages: list[tuple[str, str]]) -> BaseResponse:
        """Redirect to the panel carrying the outcome in the URL (see ``notices``)."""
        values: dict[str, Any] = {notices.PARAM: notices.pack(messages)}
        return redirect(url_for(".panel", **values), 303)

    def check(self) -> Response:
        """GET (JSON): the server's verdict on the form as typed: errors and findings.

        The emergency phrase is confirmed in its own step, so it is not asked for here
        (and never travels in a URL).
        """
        phrase = self.config.emergency_phrase
        args = request.args.copy()
        args["confirm_emergency"] = phrase
        form = parse_enable(
            args,
            emergency_phrase=phrase,
            actor=_actor(self.who()),
            operations=self.service.operations,
        )
        if not form.ok:
            return json_response({"errors": form.errors, "findings": []})
        req: EnableRequest = form.request.request
        return json_response(
            {
                "errors": {},
                "findings": [f.to_dict() for f in self._findings(req)],
                "duration_seconds": req.seconds,
                "blocked_operations": [op.value for op in req.blocked],
            }
        )

    def data(self) -> Response:
        """GET (JSON): everything the dashboard shows."""
        return json_response(build_snapshot(self.service, self.config, self.web.sessions))

    def history(self) -> Response:
        """GET (JSON): one page of the history (``?history_offset=&history_kind=``)."""
        try:
            query = parse_query(request.args)
        except ValidationError as exc:
            body = {"error": "validation_error", "message": str(exc), "field": exc.field}
            return json_response(body, 400)
        return json_response(history_view(self.service, self.config, query))

    def status(self) -> Response:
        """GET (JSON): the admin status view (what the live stream sends)."""
        return json_response(admin_status(self.service))

    def report(self, report_id: str) -> Response:
        """GET: a stored report, rendered (``?format=html|md|json``)."""
        fmt = request.args.get("format", "html")
        if fmt not in REPORT_FORMATS:
            return Response("unknown format", 400, mimetype="text/plain")
        try:
            report = load_report(self.service, report_id)
        except NotFound:
            body = render_template("maintenance_admin/refused.html", message="No such report.")
            return Response(body, 404, mimetype="text/html")
        response = Response(render_report(report, fmt), mimetype=REPORT_FORMATS[fmt])
        if fmt == "html":
            response.headers["Content-Security-Policy"] = REPORT_CSP
            response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response


def _remaining(status: MaintenanceStatus) -> str:
    """The duration field of an active window with an end: the time left, in whole
    minutes (saving the form unchanged keeps about the same end); empty otherwise."""
    left = status.retry_after()
    if not status.is_active or left is None:
        return ""
    return human_seconds(math.ceil(left / 60) * 60).replace(" ", "")


def _actor(who: WebIdentity) -> str:
    return who.username or "admin"


def _command_actor(who: WebIdentity) -> Actor:
    return Actor(
        name=_actor(who),
        channel="panel",
        is_admin=who.is_admin,
        is_critical_admin=who.is_critical_admin,
    )


def _enabled_message(outcome: Outcome) -> str:
    result: ActivationResult = outcome.value
    status = result.status
    text = (
        f"Maintenance ({status.mode.value}) is on, status version {status.version}; "
        f"{len(result.applied_nodes)} node(s) applied it"
        + ("." if result.fenced else f" (propagation: {result.propagation}).")
    )
    sessions = outcome.data.get("sessions")
    if sessions is not None:
        text += f" {sessions['count']} non-admin session(s) logged out."
    return text


def _outcome_messages(outcome: Outcome, text: str) -> list[tuple[str, str]]:
    """The success line, then one error line per follow-up effect that failed."""
    messages = [("success", text)]
    messages += [("error", f"Not done: {e.name} — {e.detail}.") for e in outcome.failed]
    return messages
