"""Activation under load: a fenced enable, then a fenced disable, while web instances serve a
steady mix of blocked and allowed requests and Celery publishers publish both kinds.

The fleet, all separate processes on this host: ``--instances`` web instances
(bench/support/load_web.py: a Flask app with MaintenanceModeMiddleware, its own service
and status cache, served by waitress), ``--publishers`` Celery publishers
(bench/support/load_publisher.py: hooks installed by ``signals.install``, real Redis
broker) and one open-loop load generator (bench/support/load_client.py). Every one of them
stamps what it does with ``time.monotonic_ns()`` -- CLOCK_MONOTONIC, one clock shared by
every process of a Linux host -- so a request's own start on its instance can be compared
with the moment ``enable_maintenance(wait=...)`` returned in this process.

Each round: a baseline segment (the same load, no maintenance change), then a change
segment -- a window before, the fenced enable, a window during, the fenced disable, a
window after. Printed, with the goals of bench/goals.py:

* blocked-type requests admitted after the fenced enable returned, per instance, judged by
  each request's start on that instance (goal 0), and likewise publishes (goal 0);
* requests or publishes refused after the fenced disable returned (goal 0);
* requests in flight when the enable returned: how many completed (goal: none failed);
* allowed-traffic (reads) latency p50/p99 before/during/after, against the baseline
  segments (goal: p99 during and after <= 1.2x; noise: the larger of two A/A controls --
  the baseline's p99 in two halves of alternating slices of time, one against the other,
  and the window before the enable, in which nothing has changed yet, against the
  baseline);
* each instance's view of the status version and of the activation's blocked count, and
  whether they agree with each other and with the refusals counted (goal: none differ).

    .venv/bin/python bench/activation_under_load.py [--instances 4] [--publishers 4]
        [--rate 500] [--publish-rate 100] [--window 5] [--rounds 4] [--short] [--check]
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    Report,
    aa_noise,
    bench_settings,
    cpu_seconds,
    delete_keys,
    parser,
    pct,
    split_noise,
)
from bench.goals import BY_KEY
from maintenance import build_service
from maintenance.embedded import free_port
from maintenance.redisconn import make_client, resolve_redis_url

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "bench" / "support"
GENERATE = "/captions/generate"


@dataclass
class Round:
    """The moments of one round, in monotonic nanoseconds."""

    baseline: tuple[int, int]
    start: int
    enable_called: int
    enable_returned: int
    disable_called: int
    disable_returned: int
    end: int
    version_on: int
    version_off: int
    activation_id: str
    fenced: tuple[bool, bool]
    views_during: list[dict[str, Any]]
    #: CPU seconds the web instances had used at: baseline start, change start, enable
    #: called, disable returned, end
    cpu: list[float]


def get_json(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path} on :{port} answered {response.status}")
        return json.loads(body)
    finally:
        conn.close()


def start(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start a support process; its first line says it is ready."""
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        raise SystemExit(f"{argv[0]} died while starting")
    return proc, line


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--instances", type=int, default=4, help="web instances")
    options.add_argument("--publishers", type=int, default=4, help="Celery publisher processes")
    options.add_argument("--rate", type=float, default=500, help="requests/s over all instances")
    options.add_argument("--publish-rate", type=float, default=100, help="publishes/s in all")
    options.add_argument("--window", type=float, default=5.0, help="seconds before/during/after")
    options.add_argument("--rounds", type=int, default=4)
    options.add_argument("--threads", type=int, default=16, help="waitress threads per instance")
    options.add_argument("--work", type=float, default=0.05, help="seconds a caption request works")
    args = options.parse_args()
    if args.short:
        args.instances, args.publishers, args.rate, args.publish_rate = 2, 2, 100, 20
        args.window, args.rounds = 1.0, 1
    report = Report("activation_under_load", args)

    settings = bench_settings()
    url = resolve_redis_url(settings)
    admin = build_service(settings.replace(redis_url=url), kind="cli", register=False)
    prefix = settings.redis_prefix
    env = {
        **os.environ,
        "REDIS_URL": url,
        "MAINTENANCE_DATABASE_URL": settings.database_url,
        "MAINTENANCE_REDIS_PREFIX": prefix,
        "MAINTENANCE_AUTO_MIGRATE": "0",  # this process created the schema
        "CELERY_BROKER_KEYPREFIX": f"{prefix}:broker:",
        "PYTHONPATH": str(ROOT),
    }
    tmp = Path(tempfile.mkdtemp(prefix="maintenance-load-"))
    ports = [free_port() for _ in range(args.instances)]
    webs: list[subprocess.Popen[str]] = []
    publishers: list[subprocess.Popen[str]] = []
    client: subprocess.Popen[str] | None = None
    try:
        ids = set()
        for port in ports:
            proc, line = start(
                [str(SUPPORT / "load_web.py"), str(port), str(args.threads), str(args.work)], env
            )
            webs.append(proc)
            ids.add(json.loads(line)["node_id"])
        for i in range(args.publishers):
            rate = args.publish_rate / args.publishers
            out = tmp / f"publisher{i}.json"
            proc, line = start([str(SUPPORT / "load_publisher.py"), str(rate), str(out)], env)
            publishers.append(proc)
            ids.add(json.loads(line)["node_id"])
        deadline = time.monotonic() + 60
        while not ids <= set(admin.nodes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not ids <= set(admin.nodes()):
            raise SystemExit("not every instance and publisher registered as a node")
        client, _ = start(
            [str(SUPPORT / "load_client.py"), str(args.rate), str(tmp / "client.json")]
            + [str(p) for p in ports],
            env,
        )
        time.sleep(args.window)  # warm-up: connections open, caches and code paths warm
        rounds = [run_round(admin, ports, webs, args.window) for _ in range(args.rounds)]
        stop(client)
        for proc in publishers:
            stop(proc)
        served = [get_json(port, "/_bench/records") for port in ports]
        final = [
            {
                r.activation_id: get_json(port, f"/_bench/view?activation={r.activation_id}")
                for r in rounds
            }
            for port in ports
        ]
    finally:
        for proc in [client, *publishers]:
            if proc is not None and proc.poll() is None:
                proc.kill()
        for proc in webs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in webs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        admin.close()
        admin.db.dispose()
        delete_keys(make_client(url), f"{prefix}:*")

    published = [
        json.loads((tmp / f"publisher{i}.json").read_text()) for i in range(args.publishers)
    ]
    requests = json.loads((tmp / "client.json").read_text())
    print(
        f"activation under load: {args.instances} web instances (waitress, {args.threads} "
        f"threads), {args.publishers} Celery publishers, {args.rate:g} requests/s "
        f"(3 reads : 2 caption requests of {args.work * 1000:g} ms), {args.publish_rate:g} "
        f"publishes/s (half blocked), {args.rounds} round(s), windows of {args.window:g} s "
        f"(SQL: {settings.database_url.split(':')[0]}, Redis: {url})"
    )
    print(
        "  times: time.monotonic_ns() (CLOCK_MONOTONIC, shared by every process of this host); "
        "a request is judged by its own start on its instance"
    )
    for i, r in enumerate(rounds, 1):
        print(
            f"  round {i}: fenced enable {ms(r.enable_returned - r.enable_called)} "
            f"(fenced={r.fenced[0]}), fenced disable {ms(r.disable_returned - r.disable_called)}"
            f" (fenced={r.fenced[1]})"
        )
    fence(report, rounds, served, published)
    latency(report, rounds, requests, served)
    views(report, rounds, served, published, final)
    report.finish()


def stop(proc: subprocess.Popen[str]) -> None:
    """Close a support process's stdin (it writes its records and exits)."""
    if proc.stdin:
        proc.stdin.close()
    proc.wait(60)
    if proc.returncode:
        raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")


def views_of(ports: list[int], activation_id: str) -> list[dict[str, Any]]:
    return [get_json(port, f"/_bench/view?activation={activation_id}") for port in ports]


def run_round(admin: Any, ports: list[int], webs: list[Any], window: float) -> Round:
    """A baseline segment, then before / fenced enable / during / fenced disable / after."""
    cpu = [sum(cpu_seconds(webs))]
    b0 = time.monotonic_ns()
    time.sleep(3 * window)
    b1 = c0 = time.monotonic_ns()
    cpu.append(sum(cpu_seconds(webs)))
    time.sleep(window)
    cpu.append(sum(cpu_seconds(webs)))
    e0 = time.monotonic_ns()
    on = admin.enable_maintenance("load bench", enabled_by="bench", wait=5)
    e1 = time.monotonic_ns()
    time.sleep(window)
    during = views_of(ports, on.status.activation_id)
    d0 = time.monotonic_ns()
    off = admin.disable_maintenance("bench", wait=5, requeue=False)
    d1 = time.monotonic_ns()
    cpu.append(sum(cpu_seconds(webs)))
    time.sleep(window)
    cpu.append(sum(cpu_seconds(webs)))
    return Round(
        baseline=(b0, b1),
        start=c0,
        enable_called=e0,
        enable_returned=e1,
        disable_called=d0,
        disable_returned=d1,
        end=time.monotonic_ns(),
        version_on=on.status.version,
        version_off=off.status.version,
        activation_id=on.status.activation_id,
        fenced=(on.fenced, off.fenced),
        views_during=during,
        cpu=cpu,
    )


def ms(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms"


def fence(
    report: Report, rounds: list[Round], served: list[list[Any]], published: list[list[Any]]
) -> None:
    """Admissions after the fenced enable, refusals after the fenced disable, in-flight."""
    admitted_req = admitted_pub = refused_req = refused_pub = 0
    inflight = completed = gated = failed = 0
    other_refused = errors = 0
    print("  per instance (requests by their start on the instance):")
    for n, records in enumerate(served, 1):
        line = {"blocked refused during": 0, "admitted after fence": 0, "refused after disable": 0}
        for path, started, ended, code in records:
            for i, r in enumerate(rounds):
                later = rounds[i + 1].enable_called if i + 1 < len(rounds) else float("inf")
                if path == GENERATE and r.enable_returned <= started < r.disable_called:
                    if code == 200:
                        line["admitted after fence"] += 1
                    elif code == 503:
                        line["blocked refused during"] += 1
                if r.disable_returned <= started < later and code == 503:
                    line["refused after disable"] += 1
                if path != GENERATE and code == 503 and r.start <= started < r.end:
                    other_refused += 1
                if started < r.enable_returned < ended:
                    inflight += 1
                    completed += code == 200
                    gated += code == 503
                    failed += code not in (200, 503)
            errors += code not in (200, 503)
        admitted_req += line["admitted after fence"]
        refused_req += line["refused after disable"]
        print(
            f"    instance {n}: {len(records)} requests; "
            + ", ".join(f"{k} {v}" for k, v in line.items())
        )
    for records in published:
        for kind, started, _ended, outcome in records:
            for i, r in enumerate(rounds):
                later = rounds[i + 1].enable_called if i + 1 < len(rounds) else float("inf")
                if kind == "blocked" and r.enable_returned <= started < r.disable_called:
                    admitted_pub += outcome == "sent"
                if r.disable_returned <= started < later:
                    refused_pub += outcome == "refused"
                if kind == "allowed" and outcome == "refused" and r.start <= started < r.end:
                    other_refused += 1
            errors += outcome.startswith("error")
    pubs = sum(len(p) for p in published)
    print(
        f"  publishes: {pubs} in all; blocked-type sent after the fence {admitted_pub}, "
        f"refused after the disable {refused_pub}"
    )
    print(
        f"  in flight when the enable returned: {inflight} requests: {completed} completed "
        f"(200), {gated} refused at their own gate (started before the return, checked after "
        f"the switch), {failed} failed; allowed-type refusals {other_refused}; errors {errors}"
    )
    report.goal("activation_under_load.admitted_requests", admitted_req, 0)
    report.goal("activation_under_load.admitted_publishes", admitted_pub, 0)
    report.goal("activation_under_load.refused_after_disable", refused_req + refused_pub, 0)
    report.goal(
        "activation_under_load.inflight_failed",
        failed,
        0,
        note=f"{completed} of {inflight} completed",
    )


WINDOWS = ("baseline", "before", "during", "after")
#: The windows judged against the baseline: "before" ends when the enable is called, so
#: nothing has changed in it yet -- it is an A/A control, not a judged window.
JUDGED = ("during", "after")


def window_of(rounds: list[Round], at: int) -> str | None:
    """Which window of which round the moment ``at`` falls in."""
    for r in rounds:
        if r.baseline[0] <= at < r.baseline[1]:
            return "baseline"
        if r.start <= at < r.enable_called:
            return "before"
        if r.enable_called <= at < r.disable_returned:
            return "during"
        if r.disable_returned <= at < r.end:
            return "after"
    return None


def latency(
    report: Report, rounds: list[Round], requests: list[Any], served: list[list[Any]]
) -> None:
    """Reads' latency (from their due time) around the change vs the baseline segments;
    beside it the instances' own time for the reads, the load generator's lag and the CPU
    the instances used, which tell a slower server from a busier machine."""
    windows: dict[str, list[float]] = {name: [] for name in WINDOWS}
    lag: dict[str, list[float]] = {name: [] for name in WINDOWS}
    server: dict[str, list[float]] = {name: [] for name in WINDOWS}
    failed = 0
    for _index, kind, due, sent, done, status in sorted(requests, key=lambda rec: rec[2]):
        name = window_of(rounds, due)
        if kind != "read" or name is None:
            continue
        windows[name].append((done - due) / 1e9)
        lag[name].append((sent - due) / 1e9)
        failed += status != 200
    for records in served:
        for path, started, ended, _code in records:
            name = window_of(rounds, started)
            if path != GENERATE and name is not None:
                server[name].append((ended - started) / 1e9)
    seconds = dict.fromkeys(WINDOWS, 0.0)
    used = dict.fromkeys(WINDOWS, 0.0)
    for r in rounds:
        bounds = [r.baseline[0], r.start, r.enable_called, r.disable_returned, r.end]
        for name, i in (("baseline", 0), ("before", 1), ("during", 2), ("after", 3)):
            seconds[name] += (bounds[i + 1] - bounds[i]) / 1e9
            used[name] += r.cpu[i + 1] - r.cpu[i]
    base = windows["baseline"]
    base_p99 = pct(base, 99)
    print(
        f"  reads (allowed), latency from the due time; {failed} not answered 200; beside it "
        "the instances' own time, the generator's lag and the CPUs the instances kept busy:"
    )
    worst, worst_name = 0.0, ""
    for name, samples in windows.items():
        ratio = pct(samples, 99) / base_p99
        print(
            f"    {name:<8} {len(samples):6d} reads   p50 {pct(samples, 50) * 1000:7.2f} ms   "
            f"p99 {pct(samples, 99) * 1000:7.2f} ms   p99 / baseline {ratio:.2f}x   "
            f"(server p99 {pct(server[name], 99) * 1000:6.2f} ms, lag p99 "
            f"{pct(lag[name], 99) * 1000:6.2f} ms, CPUs {used[name] / seconds[name]:.2f})"
        )
        if name in JUDGED and ratio >= worst:
            worst, worst_name = ratio, name
    # Two A/A controls, both the same load with nothing changing: the baseline's p99 in
    # two interleaved halves, and the "before" window (as long as the judged ones, right
    # before the enable) against the baseline. The larger is the run's noise.
    halves = split_noise(base, lambda half: pct(half, 99)) / base_p99
    before = abs(pct(windows["before"], 99) / base_p99 - 1)
    print(
        f"    A/A: baseline p99 of two halves differ by {halves:.1%}; the window before the "
        f"enable (no change yet) differs from the baseline by {before:.1%}"
    )
    limit = BY_KEY["activation_under_load.allowed_p99"].limit
    report.goal(
        "activation_under_load.allowed_p99",
        worst,
        aa_noise(1 + max(halves, before), limit),
        note=f"worst window: {worst_name}",
    )


def views(
    report: Report,
    rounds: list[Round],
    served: list[list[Any]],
    published: list[list[Any]],
    final: list[dict[str, Any]],
) -> None:
    """Each instance's view of the version and of each activation's blocked count."""
    truth = []
    for r in rounds:
        refused = sum(
            1
            for records in served
            for _path, started, _ended, code in records
            if code == 503 and r.start <= started < r.end
        ) + sum(
            1
            for records in published
            for _kind, started, _ended, outcome in records
            if outcome == "refused" and r.start <= started < r.end
        )
        truth.append(refused)
    print(
        "  each instance's view (during: version while on; after: version now, blocked count "
        f"of each activation; refusals counted by the clients: {truth}):"
    )
    differ = 0
    for n, seen in enumerate(final, 1):
        during = [r.views_during[n - 1]["version"] for r in rounds]
        now = [seen[r.activation_id]["version"] for r in rounds]
        blocked = [seen[r.activation_id]["blocked"] for r in rounds]
        agrees = (
            during == [r.version_on for r in rounds]
            and all(v == rounds[-1].version_off for v in now)
            and blocked == truth
        )
        differ += not agrees
        node = seen[rounds[0].activation_id]["node_id"]
        print(
            f"    instance {n} ({node}): during {during}, after {now[-1]}, blocked {blocked}"
            f"{'' if agrees else '   DIFFERS'}"
        )
    report.goal("activation_under_load.views_disagree", differ, 0)


if __name__ == "__main__":
    main()
