"""The scenario's first half: the fleet, jobs running, normal maintenance, drain, disable."""

from __future__ import annotations

import time
import uuid
from typing import Any

from maintenance import OperationBlocked
from maintenance.integrity import check_results
from maintenance_demo.captioner.jobs import OPEN_STATES
from maintenance_demo.captioner.seed import ADMIN, USER
from workers import wait_for_drain

from .context import Scenario, Stage, plural, wait_until
from .narrator import Step
from .operator import Operator
from .progress import DrainBar
from .web import Person, Reply

REASON = "Database upgrade"


def started_job(reply: Reply) -> int:
    """The id of the job a 202 reply started (anything else: an error saying what came)."""
    if reply.status != 202:
        raise RuntimeError(f"expected 202, got {reply.status}: {reply.text}")
    return int(reply.body["job"]["id"])


def _all(states: list[dict[str, Any]], status: str) -> bool:
    return bool(states) and all(s["status"] == status for s in states)


def start_fleet(sc: Scenario, step: Step) -> None:
    """Step 1: the demo launcher starts web, workers and beat on fresh state."""
    options = sc.fleet.options
    sc.narrator.say(
        "A fresh copy of the captioner (a Flask + Celery app that writes captions for "
        "images) starts with its own databases: the web app, "
        f"{options.workers} Celery workers and the beat scheduler."
    )
    seconds = sc.fleet.start()
    service = sc.fleet.service
    sc.narrator.check(True, f"the captioner answers at {sc.fleet.web_url}/")

    def kinds() -> dict[str, int]:
        found: dict[str, int] = {}
        for node in service.nodes().values():
            found[node.kind] = found.get(node.kind, 0) + 1
        return found if found.get("beat") else {}

    nodes = wait_until(kinds, 30, "beat to register")
    workers = nodes.get("worker", 0)
    sc.narrator.check(
        workers >= options.workers,
        f"{plural(workers, 'worker')} with {options.concurrency} job slots each, "
        "and beat, have joined the fleet",
    )
    status = service.get_maintenance_status()
    sc.narrator.require(not status.is_active, "maintenance is off")
    sc.operator = Operator(sc.narrator, sc.fleet.env)
    step.observed = f"web + {plural(workers, 'worker')} + beat up in {seconds:.0f} s"


def jobs_running(sc: Scenario, step: Step) -> None:
    """Step 2: alice starts long-ish jobs; more wait in the queue behind them."""
    options = sc.fleet.options
    slots = options.workers * options.concurrency
    sc.narrator.say(
        "Alice, a regular user, logs in and asks for captions and an image analysis. "
        f"Each job takes at least {sc.task_seconds:g} seconds (simulated model time; the "
        "walkthrough holds them until it has looked at them). The admin is logged in too."
    )
    sc.fleet.hold()
    admin = sc.admin = Person(sc.fleet.web_url, ADMIN)
    sc.narrator.require(admin.log_in().status == 200, "the admin logs in")
    alice = sc.alice = Person(sc.fleet.web_url, USER)
    sc.narrator.require(alice.log_in().status == 200, "alice logs in")
    images = alice.get("/images")
    sc.narrator.require(images.status == 200, "alice sees her images (GET /images: 200)")
    sc.images = sorted(int(i["id"]) for i in images.body["images"])
    ids = sc.images
    paths = [f"/images/{ids[2]}/analyze"] + ["/caption/generate"] * (slots - 1)
    bodies: list[dict[str, Any]] = [{}] + [
        {"image_id": ids[n % len(ids)]} for n in range(slots - 1)
    ]
    sc.jobs["running"] = [started_job(alice.post(p, b)) for p, b in zip(paths, bodies, strict=True)]
    sc.narrator.check(True, f"alice started {slots} jobs: HTTP 202 for each")
    wait_until(
        lambda: _all(sc.job_states("running", alice), "running"),
        30,
        f"all {slots} jobs to start",
    )
    sc.narrator.check(True, f"all {slots} are running: every worker slot is busy")
    sc.jobs["held"] = [
        started_job(alice.post("/caption/generate", {"image_id": ids[-1 - n]})) for n in range(3)
    ]
    queued = _all(sc.job_states("held", alice), "queued")
    sc.narrator.check(queued, "3 more caption jobs wait in the queue for a free slot")
    step.observed = f"{slots} running, 3 queued"


def normal_maintenance(sc: Scenario, step: Step) -> None:
    """Step 3: enable --wait; users refused (HTTP and Celery), logged out; admins pass."""
    assert sc.operator is not None
    service = sc.fleet.service
    sc.narrator.say(
        "The operator switches maintenance on and waits until every process has applied "
        "it. From then on new work is refused everywhere; work already running may finish."
    )
    typed = sc.operator.run(
        "enable", "--reason", REASON, "--duration", "10m", "--wait", "10", "--by", "operator"
    )
    sc.narrator.require(
        typed.code == 0, "maintenance is on; every live process applied it before it returned"
    )
    wait_until(lambda: service.status.is_active, 10, "the status to arrive")
    sc.activation_id = service.status.activation_id
    alice = sc.user()
    states = sc.job_states("running")
    still = sum(s["status"] == "running" for s in states)
    sc.narrator.check(
        still > 0,
        (f"all {still}" if still == len(states) else f"{still} of the {len(states)}")
        + " jobs that started before maintenance are still running",
    )

    refused = alice.post("/caption/generate", {"image_id": sc.images[0]})
    sc.narrator.check(
        refused.status == 503 and refused.body.get("operation") == "caption_generation",
        f'alice asks for a caption: HTTP {refused.status} "{refused.body.get("title")}"',
    )
    sc.narrator.say(f"message: {refused.text}", indent=6, hang=15)
    sc.narrator.say(f"Retry-After: {refused.headers.get('Retry-After')} s", indent=6)

    task_id = str(uuid.uuid4())
    error: OperationBlocked | None = None
    try:
        sc.fleet.publisher.send_task(
            "captioner.generate_caption",
            kwargs={"job_id": 0, "image_id": sc.images[0]},
            task_id=task_id,
        )
    except OperationBlocked as exc:
        error = exc
    sc.narrator.check(
        error is not None and task_id not in sc.fleet.queued_ids(),
        "a direct Celery publish (send_task) raises OperationBlocked; nothing reached the broker",
    )

    logged_out = alice.get("/images")
    sc.narrator.check(
        logged_out.status == 401,
        f"alice's session has ended: GET /images now answers {logged_out.status} (200 before)",
    )
    login = alice.log_in()
    sc.narrator.check(
        login.status == 503,
        f'alice cannot log back in: HTTP {login.status} "{login.body.get("title")}"',
    )

    admin = sc.admin
    assert admin is not None
    panel = admin.get("/admin/maintenance/")
    sc.narrator.check(
        panel.status == 200,
        f"the admin is still logged in; the admin panel answers: "
        f"{sc.fleet.web_url}/admin/maintenance/",
    )
    fresh = Person(sc.fleet.web_url, ADMIN).log_in()
    sc.narrator.check(fresh.status == 200, f"an admin can still log in: HTTP {fresh.status}")
    reply = admin.post("/caption/generate", {"image_id": sc.images[0]})
    sc.narrator.check(reply.status == 202, f"the admin starts a caption job: HTTP {reply.status}")
    if reply.status == 202:
        sc.jobs["admin"] = [int(reply.body["job"]["id"])]
    step.observed = (
        f"user: HTTP {refused.status}, publish "
        f"{'refused' if error else 'ACCEPTED'}, logged out, login {login.status}; "
        f"admin: HTTP {reply.status}"
    )


def drain(sc: Scenario, step: Step) -> None:
    """Step 4: wait (with a progress bar) until the running jobs have finished."""
    service = sc.fleet.service
    sc.narrator.say(
        "Nobody stops the jobs that were already running: the operator waits until they "
        "have finished (as `maintenance drain --wait` does)."
    )
    bar = DrainBar("Draining", sc.narrator.out)
    sc.fleet.release()
    started = time.monotonic()
    try:
        drained = wait_for_drain(
            max(60.0, 8 * sc.task_seconds),
            service,
            on_progress=lambda running: bar.update(len(running)),
        )
    finally:
        bar.close()
    seconds = time.monotonic() - started
    sc.narrator.require(drained, f"drained after {seconds:.1f} s: no blocked job is running")
    states = sc.job_states("running")
    ran_once = _all(states, "done") and all(s["runs"] == 1 for s in states)
    sc.narrator.check(
        ran_once,
        f"the {len(states)} jobs that started before maintenance finished, each ran once, "
        "and wrote their captions and analysis",
    )
    admin_done = wait_done(sc, "admin")
    sc.narrator.check(admin_done, "the admin's job ran during maintenance and wrote its caption")
    held = len(sc.jobs.get("held", []))
    deferred = wait_until(
        lambda: (n := service.get_maintenance_status().deferred_jobs_count) >= held and n,
        30,
        "the queued jobs to be held back",
    )
    untouched = all(s["runs"] == 0 for s in sc.job_states("held"))
    sc.narrator.check(
        deferred == held and untouched,
        f"the {held} queued jobs were held back by the workers (deferred), not started",
    )
    step.observed = (
        f"drained in {seconds:.0f} s; {len(states)} finished (1 run each); "
        f"admin job {'done' if admin_done else 'NOT done'}; {deferred} deferred"
    )


def wait_done(sc: Scenario, role: str, timeout: float | None = None) -> bool:
    """Wait until the jobs of ``role`` have ended; whether they all ended ``done``."""
    if not sc.jobs.get(role):
        return False
    limit = timeout or max(30.0, 6 * sc.task_seconds)
    return bool(
        wait_until(
            lambda: all(s["status"] not in OPEN_STATES for s in sc.job_states(role)),
            limit,
            f"the {role} jobs to finish",
        )
    ) and all(s["status"] == "done" for s in sc.job_states(role))


def disable(sc: Scenario, step: Step) -> None:
    """Step 5: disable requeues the held-back jobs; each runs exactly once."""
    assert sc.operator is not None
    service = sc.fleet.service
    sc.narrator.say(
        "The operator switches maintenance off. The jobs held back during maintenance "
        "are put back in the queue, each exactly once, and run."
    )
    held = len(sc.jobs.get("held", []))
    typed = sc.operator.run("disable", "--by", "operator")
    sc.narrator.require(typed.code == 0, "maintenance is off")
    done = wait_done(sc, "held")
    states = sc.job_states("held")
    runs = [s["runs"] for s in states]
    sc.narrator.check(
        done and runs == [1] * held,
        f"the {held} held-back jobs ran after maintenance: runs per job {runs}",
    )
    listing = sc.operator.run("jobs", "--state", "requeued")
    rows = [line.split() for line in listing.output.splitlines()]
    requeued = sum(row[1:2] == ["requeued"] for row in rows)
    # Columns end "original id, requeued as": a deferred job keeps its task id.
    kept = sum(row[1:2] == ["requeued"] and row[-1] == row[-2] for row in rows)
    left = service.get_maintenance_status().deferred_jobs_count
    sc.narrator.check(
        requeued == held and kept == held and left == 0,
        f"{requeued} requeued, {kept} under their own task ids; {left} still held back",
    )
    sc.narrator.check(sc.user().log_in().status == 200, "alice can log in again")
    results = wait_until(
        lambda: check_results(service, sc.activation_id),
        20,
        "the consistency checks that run when maintenance ends",
    )
    passed = sum(bool(r["ok"]) for r in results)
    sc.narrator.check(
        passed == len(results),
        f"the app's consistency checks ran when maintenance ended: {passed} of "
        f"{len(results)} passed",
    )
    step.observed = (
        f"{held} deferred -> {requeued} requeued -> {runs.count(1)} done once; "
        f"checks {passed}/{len(results)} ok"
    )


#: The first half of the story, in order.
STEPS = (
    Stage("Start the fleet", "web app, 2 prefork workers and beat up", start_fleet),
    Stage("Jobs running", "every worker slot busy; 3 more jobs queued", jobs_running),
    Stage(
        "Normal maintenance",
        "user refused: HTTP 503 and Celery publish; users logged out; admin works",
        normal_maintenance,
    ),
    Stage("Drain", "running jobs finish; queued jobs held back (deferred)", drain),
    Stage(
        "Disable with requeue",
        "held-back jobs requeued and run exactly once; users back; checks pass",
        disable,
    ),
)
