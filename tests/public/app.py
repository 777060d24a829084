"""A small app for the public pages: a home page showing the banner, a form users post
to (refused during maintenance), a sign-in page, a session-role login, the middleware
with its status page."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template_string, request, session

from maintenance import EnhancedMaintenanceModeService
from maintenance.web import MaintenanceModeMiddleware

HOME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Captioner</title>
<style>
  body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: #1d2939; }
  nav { display: flex; gap: 1.2rem; align-items: center; padding: .8rem 1.2rem;
        background: #101828; color: #fff; }
  nav strong { font-size: 1.1rem; }
  main { max-width: 44rem; margin: 2rem auto; padding: 0 1.2rem; }
  .card { border: 1px solid #eaecf0; border-radius: 10px; padding: 1rem 1.2rem; margin: 1rem 0; }
</style></head>
<body>
{{ maintenance_banner() }}
<nav><strong>Captioner</strong><span>Images</span><span>Captions</span><span>Jobs</span></nav>
<main>
  <h1>Your images</h1>
  <div class="card">sunset.jpg &mdash; 3 captions</div>
  <div class="card">harbour.png &mdash; captioning queued</div>
</main>
</body></html>"""


FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>New caption</title></head>
<body>{{ maintenance_banner() }}
<form method="post" action="/captions/generate"><input name="text" value="a harbour at dusk">
<button id="generate" type="submit">Generate</button></form></body></html>"""

SIGN_IN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title>
<style>body { font: 16px/1.5 system-ui, sans-serif; color: #1d2939; max-width: 30rem;
margin: 2rem auto; padding: 0 1rem; } label, input { display: block; margin: .3rem 0; }</style>
</head><body>
{{ maintenance_banner() }}
<h1>Sign in</h1>
{{ maintenance_login_notice() }}
<form method="post" action="/login"><label>Username <input name="username"></label>
<label>Password <input type="password" name="password"></label>
<button type="submit">Sign in</button></form></body></html>"""


def build_app(service: EnhancedMaintenanceModeService, **config: Any) -> Flask:
    """``/`` shows the banner; ``POST /captions`` is work users lose during maintenance."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="public-tests-secret", **config)
    MaintenanceModeMiddleware(app, service=service)

    @app.get("/")
    def home() -> str:
        return render_template_string(HOME)

    @app.get("/captions/new")
    def new_caption() -> str:
        return render_template_string(FORM)

    @app.get("/signin")
    def sign_in() -> str:
        return render_template_string(SIGN_IN)

    @app.post("/captions/generate")
    def generate_caption() -> Any:
        return jsonify(queued=True)

    @app.get("/login")
    def login() -> Any:
        session["username"] = request.args["username"]
        session["role"] = request.args.get("role", "user")
        return jsonify(logged_in=session["username"])

    return app
