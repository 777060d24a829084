"""The scenario's second half: an emergency with grace and termination, recovery, report."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from maintenance.integrity import check_results
from maintenance.reports import load_report

from ..commands import has_command
from .context import Scenario, Stage, wait_until
from .narrator import Step
from .normal import started_job, wait_done

REASON = "Storage failure"
#: Seconds the running jobs get to stop on their own, then from SIGTERM to SIGKILL.
GRACE, KILL_AFTER = 1.0, 1.0


def unavailable() -> str | None:
    """Why the emergency half cannot run here (None: it can)."""
    if not has_command("emergency"):
        return "emergency support not installed (no `maintenance emergency` command)"
    try:
        import workers.emergency  # noqa: F401
    except ImportError as exc:
        return f"emergency support not installed ({exc})"
    return None


def _caption_of_earlier_job(sc: Scenario) -> int:
    for state in sc.job_states("running"):
        result = state.get("result") or {}
        if "caption_id" in result:
            return int(result["caption_id"])
    raise RuntimeError("no caption was written earlier")


def declare(sc: Scenario, step: Step) -> None:
    """Step 6: three kinds of running job meet the termination ladder."""
    assert sc.operator is not None
    service = sc.fleet.service
    sc.narrator.say(
        "Something breaks. Alice has three jobs running: a caption (it checks whether it "
        "should stop), an image optimisation (one blocking encoder call: it cannot check) "
        "and a post to her Instagram account (it holds off SIGTERM while it uploads, and "
        "must not run twice). The operator declares an emergency: everything but admin "
        f"work is refused at once, users are logged out, running jobs get {_seconds(GRACE)} "
        f"to stop on their own, then SIGTERM, and SIGKILL {_seconds(KILL_AFTER)} later."
    )
    alice = sc.user()
    image = sc.images[1]
    # Held until the emergency has stopped them, however long the machine takes to get
    # there: none may end on its own before its turn on the ladder.
    sc.fleet.hold()
    sc.jobs["cooperative"] = [started_job(alice.post("/caption/generate", {"image_id": image}))]
    sc.jobs["stubborn"] = [started_job(alice.post(f"/images/{image}/optimize", {}))]
    caption = _caption_of_earlier_job(sc)
    sc.jobs["unsafe"] = [started_job(alice.post("/platform/post", {"caption_id": caption}))]
    roles = ("cooperative", "stubborn", "unsafe")
    wait_until(
        lambda: all(s["status"] == "running" for r in roles for s in sc.job_states(r)),
        30,
        "the three jobs to start",
    )
    sc.narrator.check(True, "the caption, optimisation and post jobs are running")

    typed = sc.operator.run(
        "emergency",
        "--reason",
        REASON,
        "--grace",
        f"{GRACE:g}s",
        "--kill-after",
        f"{KILL_AFTER:g}s",
        "--by",
        "operator",
    )
    sc.fleet.release()  # their requeued copies run to the end after the lift
    sc.narrator.require(
        typed.code == 0,
        "the emergency was in force everywhere at once; the command waited until every "
        "running job had stopped",
    )
    sc.emergency_id = service.get_maintenance_status().emergency_id
    report = _report_now(sc)
    stopped = {
        outcome: [j["task"] for j in report["jobs"][outcome]]
        for outcome in ("aborted", "terminated", "killed")
    }
    expected = {
        "aborted": ["captioner.generate_caption"],
        "terminated": ["captioner.optimize_image"],
        "killed": ["captioner.post_to_platform"],
    }
    sc.narrator.check(
        stopped == expected,
        f"stopped on its own: {_names(stopped['aborted'])}; by SIGTERM: "
        f"{_names(stopped['terminated'])}; by SIGKILL: {_names(stopped['killed'])}",
    )
    # Every time is measured from the plan the emergency carries (its start and its
    # deadlines), the event the checks are about -- not from the log entry written a
    # moment after the declaration. A worker never signals before a deadline; the
    # outcome is recorded after the signal, so "not before the deadline" needs no slack.
    plan = report["plan"]
    when = _stop_times(report)
    coop = when.get(("captioner.generate_caption", "aborted"))
    sigterm = when.get(("captioner.optimize_image", "terminated"))
    sigkill = when.get(("captioner.post_to_platform", "killed"))
    grace_ends = plan["sigterm_at"] - plan["started_at"]
    kill_due = plan["kill_at"] - plan["started_at"]
    # Its outcome (``aborted``, not ``terminated``) shows it stopped before SIGTERM; its
    # record is written by the worker's handoff thread a moment after it stopped, which
    # a busy machine may delay by up to another grace period.
    sc.narrator.check(
        coop is not None and coop < grace_ends + GRACE,
        f"the caption job stopped {_secs(coop)} after the declaration, within the "
        f"{GRACE:g} s grace",
    )
    sc.narrator.check(
        sigterm is not None and sigterm >= grace_ends - _CLOCK_RESOLUTION,
        f"SIGTERM when the grace ended ({_secs(sigterm)}) stopped the optimisation",
    )
    sc.narrator.check(
        sigkill is not None and sigkill >= kill_due - _CLOCK_RESOLUTION,
        f"the post ignored SIGTERM; SIGKILL {KILL_AFTER:g} s later ({_secs(sigkill)}) ended it",
    )
    interrupted = sc.job_states("cooperative")[0]["status"] == "interrupted"
    sc.narrator.check(interrupted, "the caption job saved that it was interrupted")

    refused = alice.get("/images")
    sc.narrator.check(
        refused.status == 503,
        f'alice is logged out and even reading is refused: HTTP {refused.status} "'
        f'{refused.body.get("title")}"',
    )
    admin = sc.admin
    assert admin is not None
    panel = admin.get("/admin/maintenance/")
    sc.narrator.check(panel.status == 200, "the admin still reaches the admin panel")
    step.observed = (
        f"{len(stopped['aborted'])} stopped on its own within {GRACE:g} s, "
        f"{len(stopped['terminated'])} terminated, {len(stopped['killed'])} killed; "
        f"user {refused.status}, admin {panel.status}"
    )


#: Stored timestamps keep microseconds; SQLite round-trips them exactly, floats nearly.
_CLOCK_RESOLUTION = 1e-3


def recover(sc: Scenario, step: Step) -> None:
    """Step 7: lift the emergency; what is safe to rerun is requeued once and completes."""
    assert sc.operator is not None
    service = sc.fleet.service
    sc.narrator.say(
        "The storage is fixed and the operator lifts the emergency. The jobs that were cut "
        "off are put back in the queue exactly once -- except the post, which is not safe "
        "to run twice and is left for a person to look at."
    )
    status = service.get_maintenance_status()
    activation = status.activation_id
    typed = sc.operator.run("emergency", "--off", "--by", "operator")
    sc.narrator.require(typed.code == 0, "the emergency is lifted")
    rerun = [*sc.jobs["cooperative"], *sc.jobs["stubborn"]]
    admin = sc.admin
    assert admin is not None
    wait_until(
        lambda: all(admin.job(i)["status"] == "done" for i in rerun),
        max(30.0, 6 * sc.task_seconds),
        "the requeued jobs to complete",
    )
    states = [admin.job(i) for i in rerun]
    runs = [s["runs"] for s in states]
    sc.narrator.check(
        runs == [2, 2],
        f"the caption and optimisation jobs were requeued once and completed "
        f"(runs per job {runs}: the cut-off run and the rerun)",
    )
    post = sc.job_states("unsafe")[0]
    sc.narrator.check(
        post["runs"] == 1 and post["status"] != "done",
        f"the post was not requeued: it ran once and stays {post['status']!r} for a person "
        "to check",
    )
    results = wait_until(
        lambda: check_results(service, activation),
        20,
        "the consistency checks that run when maintenance ends",
    )
    problems = [p for r in results for p in (r.get("problems") or [])]
    post_id = sc.jobs["unsafe"][0]
    names_post = any(p.startswith(f"job {post_id} ") for p in problems)
    sc.narrator.check(
        names_post,
        f"the consistency check names the job SIGKILL cut off: {_first(problems, post_id)}",
    )
    login = sc.user().log_in()
    sc.narrator.check(login.status == 200, "alice can log in again")
    new = sc.user().post("/caption/generate", {"image_id": sc.images[0]})
    sc.jobs["after"] = [started_job(new)]
    written = wait_done(sc, "after")
    sc.narrator.check(
        written, "and her new caption job runs and is written, as before the incident"
    )
    step.observed = (
        f"2 requeued once and done (runs {runs}); post not rerun; check names it; "
        f"users back (login {login.status})"
    )


def report(sc: Scenario, step: Step) -> None:
    """Step 8: the emergency report, stored under the emergency id and written to files."""
    assert sc.operator is not None
    eid = sc.emergency_id
    if eid is None:
        raise RuntimeError("no emergency id (an earlier step failed)")
    sc.narrator.say(
        "Lifting the emergency stored its report. The operator reads it and keeps a copy."
    )
    run_dir = sc.fleet.run_dir
    written = []
    for fmt in ("md", "html"):
        path = run_dir / f"emergency-report-{eid}.{fmt}"
        typed = sc.operator.run("report", "--emergency", eid, "--format", fmt, show=False)
        line = sc.operator.line("report", "--emergency", eid, "--format", fmt)
        sc.narrator.command(f"{line} > {_shown(path)}", "", typed.code)
        if typed.code == 0:
            path.write_text(typed.output)
            written.append(_shown(path))
    sc.narrator.check(len(written) == 2, "report written: " + " and ".join(written))
    body = load_report(sc.fleet.service, eid)["body"]
    jobs = body["jobs"]
    lines = [
        f"report {eid}: {body['reason']!r}, declared by {body['trigger']['by']}, "
        f"lasted {body['duration_seconds']:.0f} s",
        f"jobs running when declared: {jobs['running_at_activation']}; stopped on their own "
        f"{len(jobs['aborted'])}, terminated {len(jobs['terminated'])}, killed "
        f"{len(jobs['killed'])}; requeued {len(jobs['requeued'])}; not safe to rerun "
        f"{len(jobs['not_rerun_safe'])}",
        f"sessions logged out: {body['sessions']['invalidated']}; blocked attempts: "
        f"{body['blocked_attempts_total']}",
    ]
    for text in lines:
        sc.narrator.say(text, indent=6, hang=8)
    complete = (
        len(jobs["aborted"]) == len(jobs["terminated"]) == len(jobs["killed"]) == 1
        and len(jobs["requeued"]) == 2
        and len(jobs["not_rerun_safe"]) == 1
        and not body["ongoing"]
    )
    sc.narrator.check(complete, "the report accounts for every stopped job and its recovery")
    step.observed = f"report {eid[:12]}: 3 stopped, 2 requeued, 1 not rerun-safe; .md + .html"


def _report_now(sc: Scenario) -> dict[str, Any]:
    from maintenance.emergency import build_emergency_report

    assert sc.emergency_id is not None
    return build_emergency_report(sc.fleet.service, sc.emergency_id)


def _stop_times(report: dict[str, Any]) -> dict[tuple[str, str], float]:
    """(task, outcome) -> seconds after the plan started, from the report's timeline."""
    started = report["plan"]["started_at"]
    found: dict[tuple[str, str], float] = {}
    for row in report["timeline"]:
        if row["event"] != "job_terminated":
            continue
        detail = str(row["detail"])  # "<task>[<id>] on <worker>: <outcome>"
        key = (detail.partition("[")[0], detail.rpartition(": ")[2])
        found.setdefault(key, datetime.fromisoformat(row["at"]).timestamp() - started)
    return found


def _names(tasks: list[str]) -> str:
    short = [t.removeprefix("captioner.").replace("_", " ") for t in tasks]
    return ", ".join(short) if short else "none"


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    here = Path.cwd()
    return os.path.relpath(path, here) if path.is_relative_to(here) else str(path)


def _seconds(value: float) -> str:
    return f"{value:g} second{'' if value == 1 else 's'}"


def _secs(value: float | None) -> str:
    # The plan starts a moment before the activation is logged: never print "-0.0".
    return "never" if value is None else f"{max(value, 0.0):.1f} s"


def _first(problems: list[str], job_id: int) -> str:
    return next((p for p in problems if p.startswith(f"job {job_id} ")), "nothing")


#: The second half of the story, in order.
STEPS = (
    Stage(
        "Emergency",
        f"jobs stop on their own within the {GRACE:g} s grace, else SIGTERM, then SIGKILL",
        declare,
    ),
    Stage(
        "Recovery",
        "stopped jobs requeued once and completed; the unsafe one is not rerun",
        recover,
    ),
    Stage("Report", "emergency report stored; Markdown and HTML written to files", report),
)
