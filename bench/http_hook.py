"""Cost of the Flask request hook on a request it lets through.

Three apps answer the same route, called in-process through WSGI (no sockets, so only
the hook's cost differs): a bare Flask app, the same app with MaintenanceModeMiddleware,
and the same app with the per-request state read peers do (one Redis GET + JSON parse in
a before_request hook). Rounds alternate between the apps; medians of per-round means,
in CPU time of the calling thread (robust when other processes load the machine) and in
wall-clock time (which is what the Redis round trip costs).

A fourth app, a second bare one, is timed the same way: bare-again / bare is the method's
A/A noise in this run, the margin the goals are judged with.

Goals (bench/goals.py): hooked <= 1.03 x bare (CPU); the hook's extra cost over bare at
least 3x smaller than the Redis-GET hook's (wall).

    .venv/bin/python bench/http_hook.py [--requests 3000] [--rounds 21] [--short] [--check]
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import redis
from flask import Flask

from bench._common import Report, aa_noise, bench_redis_url, delete_keys, parser
from bench.goals import BY_KEY
from maintenance import Settings, build_service
from maintenance.web import MaintenanceModeMiddleware

REDIS_URL = bench_redis_url()


def make_app(name: str) -> Flask:
    app = Flask(name)
    app.config["SECRET_KEY"] = "bench"

    @app.get("/dashboard")
    def dashboard() -> str:
        return "ok"

    return app


def environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "bench",
        "HTTP_ACCEPT": "text/html",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def run(app: Flask, n: int) -> tuple[float, float]:
    """Mean wall-clock and CPU (this thread) seconds per request over ``n`` WSGI calls."""
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    base = environ("/dashboard")
    started, cpu_started = time.perf_counter(), time.thread_time()
    for _ in range(n):
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(b"")
        body = app(env, start_response)
        for _chunk in body:
            pass
        if hasattr(body, "close"):
            body.close()
    elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    assert statuses[-1].startswith("200"), statuses[-1]
    return elapsed / n, cpu / n


def measure(
    apps: dict[str, Flask], requests: int, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU seconds per request for each app, rounds alternating the order."""
    for app in apps.values():  # warm up
        run(app, 200)
    wall: dict[str, list[float]] = {name: [] for name in apps}
    cpu: dict[str, list[float]] = {name: [] for name in apps}
    for r in range(rounds):
        order = list(apps.items())
        if r % 2:
            order.reverse()
        for name, app in order:
            w, c = run(app, requests)
            wall[name].append(w)
            cpu[name].append(c)
    return (
        {n: statistics.median(v) for n, v in wall.items()},
        {n: statistics.median(v) for n, v in cpu.items()},
    )


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--requests", type=int, default=3000, help="WSGI calls per round")
    options.add_argument("--rounds", type=int, default=21)
    args = options.parse_args()
    if args.short:
        args.requests, args.rounds = 300, 5
    report = Report("http_hook", args)

    prefix = f"bench-hook-{uuid.uuid4().hex[:8]}"
    tmp = tempfile.mkdtemp()
    settings = Settings(
        redis_url=REDIS_URL,
        database_url=f"sqlite:///{tmp}/bench.db",
        redis_prefix=prefix,
        secret_key="bench",
    )
    service = build_service(settings, kind="web").start()
    client = redis.Redis.from_url(REDIS_URL)
    client.set(f"{prefix}:peer-status", service.status.to_json())
    try:
        bare = make_app("bare")
        hooked = make_app("hooked")
        MaintenanceModeMiddleware(hooked, service)
        peer = make_app("peer")

        @peer.before_request
        def read_status_from_redis() -> None:
            # What a typical maintenance extension does: read the flag on every request.
            raw = client.get(f"{prefix}:peer-status")
            if raw and json.loads(raw).get("is_active"):
                return None
            return None

        apps = {
            "bare": bare,
            "bare-again": make_app("bare-again"),
            "hooked": hooked,
            "redis-get": peer,
        }
        wall, cpu = measure(apps, args.requests, args.rounds)
        print(
            "HTTP hook on a request it lets through (maintenance off), "
            f"{args.rounds} alternating rounds x {args.requests} WSGI calls, medians:"
        )
        for name in apps:
            print(f"  {name:<10} wall {wall[name] * 1e6:7.2f} us   cpu {cpu[name] * 1e6:7.2f} us")
        control = cpu["bare-again"] / cpu["bare"]
        print(f"  A/A control: bare-again / bare (cpu) = {control:.3f}  (the method's noise)")
        ratio = cpu["hooked"] / cpu["bare"]
        print(f"  hooked / bare (cpu)            = {ratio:.3f}")
        print(f"  hooked / bare (wall)           = {wall['hooked'] / wall['bare']:.3f}")
        # The hook's extra cost, conservatively the larger of its CPU and wall figures.
        extra_hook = max(cpu["hooked"] - cpu["bare"], wall["hooked"] - wall["bare"], 0.1e-6)
        extra_peer = wall["redis-get"] - wall["bare"]
        cheaper = extra_peer / extra_hook
        # The same ratio with the hook's extra off by what bare-again differs from bare.
        aa_delta = abs(cpu["bare-again"] - cpu["bare"])
        cheaper_noise = abs(extra_peer / (extra_hook + aa_delta) - cheaper)
        print(
            f"  extra per request: hook {extra_hook * 1e6:.2f} us, "
            f"Redis-GET hook {extra_peer * 1e6:.2f} us (A/A difference {aa_delta * 1e6:.2f} us)"
        )
        print(f"  Redis-GET extra / hooked extra = {cheaper:.1f}x")
        print(
            "  Redis-GET / hooked, whole request (wall) = "
            f"{wall['redis-get'] / wall['hooked']:.2f}x"
        )
        active_but_allowed(service, settings, args, bare)
        limit = BY_KEY["http_hook.ratio"].limit
        report.goal("http_hook.ratio", ratio, aa_noise(control, limit))
        report.goal("http_hook.vs_redis_get", cheaper, cheaper_noise)
    finally:
        service.close()
        service.db.dispose()
        delete_keys(client, f"{prefix}:*")
    report.finish()


def active_but_allowed(service: Any, settings: Settings, args: Any, bare: Flask) -> None:
    """During NORMAL maintenance a read by an anonymous user is still let through:
    the hook classifies and decides, still without any network round trip."""
    operator = build_service(settings, kind="cli", register=False)
    operator.enable_maintenance("bench", enabled_by="bench", wait=5)
    try:
        hooked = make_app("hooked-active")
        MaintenanceModeMiddleware(hooked, service)
        _wall, cpu = measure({"bare": bare, "hooked": hooked}, args.requests, args.rounds)
        print(
            f"  maintenance on, a read let through: hooked cpu {cpu['hooked'] * 1e6:.2f} us, "
            f"{cpu['hooked'] / cpu['bare']:.3f} x bare (informational: classify + decide, "
            "no network)"
        )
    finally:
        operator.disable_maintenance("bench", wait=5)
        operator.close()
        operator.db.dispose()


if __name__ == "__main__":
    main()
