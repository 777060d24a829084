"""The captioner's consistency checks, in process and through ``maintenance check``."""

from __future__ import annotations

import subprocess

from maintenance_demo.captioner.models import Caption, Job

from maintenance.integrity import run_checks
from tests.support import MAINTENANCE_CLI

from .conftest import ROOT, Captioner


def _add_inconsistencies(captioner: Captioner) -> None:
    with captioner.db.sessions() as s:
        s.add(Caption(image_id=4242, text="lost", platform="x"))
        s.add(
            Job(
                owner_id=1,
                kind="caption_generation",
                task_name="captioner.generate_caption",
                task_id="gone-1",
                status="running",
            )
        )
        s.commit()


def test_checks_name_orphan_captions_and_running_jobs_without_a_task(
    captioner: Captioner,
) -> None:
    """Both checks pass on the seed data and name each inconsistency once it exists."""
    checks = captioner.app.extensions["captioner"].checks
    assert run_checks(captioner.service, checks=checks, record=False).ok
    _add_inconsistencies(captioner)
    report = run_checks(captioner.service, checks=checks, record=False)
    problems = {r.name: r.problems for r in report.results}
    assert problems == {
        "captioner.running_jobs_have_live_tasks": (
            "job 1 (captioner.generate_caption) is marked running but task gone-1 runs nowhere",
        ),
        "captioner.captions_have_images": ("caption 1 points at image 4242, which does not exist",),
    }


def test_maintenance_check_command_exits_1_on_problems_and_0_when_consistent(
    captioner: Captioner,
) -> None:
    """``maintenance check`` loads the captioner's checks (entry point) and fails on problems."""

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MAINTENANCE_CLI, "check"],
            cwd=ROOT,
            env=captioner.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    clean = run()
    assert clean.returncode == 0, clean.stderr
    assert "ok    captioner.captions_have_images" in clean.stdout
    _add_inconsistencies(captioner)
    failing = run()
    assert failing.returncode == 1, failing.stderr
    assert "FAIL  captioner.captions_have_images" in failing.stdout
    assert "- caption 1 points at image 4242, which does not exist" in failing.stdout
    assert "0 passed, 2 failed." in failing.stdout
    logged = captioner.service.history(10, kinds=("consistency_check",))
    assert {e.details["trigger"] for e in logged} == {"cli"}
