"""``MaintenanceAdmin``: mounts the admin panel blueprint on an app that already has
``MaintenanceModeMiddleware``."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, request
from werkzeug.wrappers import Response as BaseResponse

from ..host_csrf import leave_to_itself
from ..state import KEY, WebState
from . import access
from .config import AdminConfig, apply_defaults
from .views import AdminViews

if TYPE_CHECKING:
    from ...service import EnhancedMaintenanceModeService

#: The blueprint's name; the classifier's built-in rules file ``maintenance_admin.*``
#: under admin operations (and its static files under status checks).
BLUEPRINT = "maintenance_admin"


class MaintenanceAdmin:
    """The admin panel: control form, emergency control, live dashboard, history, reports.

    ``MaintenanceAdmin(app)`` after ``MaintenanceModeMiddleware(app, ...)``, or with an
    app factory ``admin = MaintenanceAdmin()`` then ``admin.init_app(app)``. The service
    and the admin check are the middleware's. Registered as
    ``app.extensions["maintenance_admin"]``. Settings are read only from ``app.config``:

    ``MAINTENANCE_ADMIN_URL_PREFIX``      where the panel lives (``/admin/maintenance``)
    ``MAINTENANCE_ADMIN_LOGIN_URL``       anonymous visitors go here with ``?next=`` (None: 401)
    ``MAINTENANCE_ADMIN_POLL_SECONDS``    dashboard refresh period (5)
    ``MAINTENANCE_ADMIN_CHART_MINUTES``   minutes in the blocked-attempts chart (30, at most 120)
    ``MAINTENANCE_ADMIN_HISTORY_PAGE``    history events a page (10; the whole log is paged)
    ``MAINTENANCE_ADMIN_REPORTS_LIMIT``   stored reports listed (20)
    ``MAINTENANCE_ADMIN_CSRF_TTL``        seconds a form's CSRF token stays valid (28800)
    ``MAINTENANCE_ADMIN_EMERGENCY_PHRASE`` what to type to confirm an emergency (``EMERGENCY``)

    ``url_prefix`` given here wins over ``MAINTENANCE_ADMIN_URL_PREFIX``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        service: EnhancedMaintenanceModeService | None = None,
        url_prefix: str | None = None,
    ) -> None:
        self.service = service
        self.url_prefix = url_prefix
        self.views: weakref.WeakKeyDictionary[Flask, AdminViews] = weakref.WeakKeyDictionary()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the panel blueprint (the middleware must be initialised first)."""
        web = app.extensions.get(KEY)
        if not isinstance(web, WebState):
            raise RuntimeError(
                "MaintenanceAdmin needs MaintenanceModeMiddleware: call its init_app(app) first"
            )
        apply_defaults(app)
        config = AdminConfig.from_app(app, self.url_prefix)
        secret = web.config.secret_key or app.secret_key
        if not secret:
            raise RuntimeError("MaintenanceAdmin needs SECRET_KEY (sessions and CSRF tokens)")
        views = AdminViews(self.service or web.service, web, config, str(secret))
        self.views[app] = views
        app.extensions["maintenance_admin"] = self
        app.register_blueprint(self.blueprint(views), url_prefix=config.url_prefix)
        leave_to_itself(app, BLUEPRINT)  # its forms carry the panel's own token

    @staticmethod
    def blueprint(views: AdminViews) -> Blueprint:
        """The panel's routes, admin-checked before every view."""
        bp = Blueprint(
            BLUEPRINT,
            __name__,
            template_folder="templates",
            static_folder="static",
            static_url_path="/static",
        )

        def admin_only() -> BaseResponse | None:
            if request.endpoint == f"{bp.name}.static":
                return None
            _who, refusal = access.require_admin(views.web, views.config.login_url)
            return refusal

        bp.before_request(admin_only)
        bp.after_request(access.secure_headers)
        bp.add_url_rule("/", "panel", views.panel, methods=["GET"])
        bp.add_url_rule("/enable", "enable", views.enable, methods=["POST"])
        bp.add_url_rule("/disable", "disable", views.disable, methods=["POST"])
        bp.add_url_rule("/check", "check", views.check, methods=["GET"])
        bp.add_url_rule("/data", "data", views.data, methods=["GET"])
        bp.add_url_rule("/status", "status", views.status, methods=["GET"])
        bp.add_url_rule("/history", "history", views.history, methods=["GET"])
        bp.add_url_rule("/reports/<report_id>", "report", views.report, methods=["GET"])
        return bp
