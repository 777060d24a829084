"""docs/quickstart.md cannot rot: its code blocks build the app in an empty directory,
and its steps run as written -- a real Redis of the test's own, a real ``celery worker``,
a real HTTP server (``waitress-serve``), the real ``maintenance``/``flask``/``celery``
commands -- each output checked against the ``text expect`` block after it.

Blocks: ```` ```lang file=NAME ```` is written to NAME; ```` ```bash env ```` lists the
environment (the test supplies its own values for exactly those names); ```` ```bash
run=NAME ```` starts a long-running process; ```` ```bash run [exit=N] ```` runs and must
exit 0 (or N); ```` ```text expect ```` lines must each appear in the previous run's
output. Other blocks (installation) are not run: this environment has the package."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from maintenance import Settings, build_service
from tests.helpers import wait_for
from tests.services import PrivateRedis, free_port

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "quickstart.md"
BLOCK = re.compile(r"^```([a-z]+)([^\n]*)\n(.*?)^```$", re.S | re.M)


@dataclass
class Block:
    lang: str
    tags: dict[str, str]
    text: str


def blocks() -> list[Block]:
    out = []
    for lang, info, text in BLOCK.findall(DOC.read_text()):
        tags = {}
        for word in info.split():
            key, _, value = word.partition("=")
            tags[key] = value
        out.append(Block(lang, tags, text))
    return out


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    try:
        yield server
    finally:
        server.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_the_quickstart_works_as_written(tmp_path: Path, redis_server: PrivateRedis) -> None:
    found = blocks()
    port = free_port()
    values = {
        "REDIS_URL": redis_server.url,
        "CELERY_BROKER_URL": redis_server.url,
        "MAINTENANCE_DATABASE_URL": f"sqlite:///{tmp_path / 'maintenance.db'}",
        "MAINTENANCE_REDIS_PREFIX": f"qs{uuid.uuid4().hex[:6]}",
        "MAINTENANCE_OPERATIONS_FILE": "operations.json",
        "MAINTENANCE_RULES_FILE": "rules.json",
        "PORT": str(port),
    }
    (env_block,) = [b for b in found if b.lang == "bash" and "env" in b.tags]
    names = re.findall(r"^export (\w+)=", env_block.text, re.M)
    assert sorted(names) == sorted(values), "the tutorial's environment changed"
    env = {
        **os.environ,
        **values,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MAINTENANCE_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": "",
    }
    for block in found:
        if "file" in block.tags:
            (tmp_path / block.tags["file"]).write_text(block.text)

    files = {
        "MAINTENANCE_OPERATIONS_FILE": str(tmp_path / "operations.json"),
        "MAINTENANCE_RULES_FILE": str(tmp_path / "rules.json"),
    }
    service = build_service(Settings.from_env({**env, **files}), kind="cli", register=False)
    service.start()
    background: list[subprocess.Popen[bytes]] = []
    output = ""
    try:
        for block in found:
            if block.lang == "text" and "expect" in block.tags:
                for line in filter(None, (raw.strip() for raw in block.text.splitlines())):
                    assert line in output, f"{line!r} not in the output:\n{output}"
                continue
            if block.lang != "bash" or "run" not in block.tags:
                continue
            name = block.tags["run"]
            if name:
                log = (tmp_path / f"{name}.log").open("wb")
                proc = subprocess.Popen(
                    ["bash", "-c", f"exec {block.text.strip()}"],
                    cwd=tmp_path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                background.append(proc)
                _wait_ready(name, proc, tmp_path, port, service)
                continue
            done = subprocess.run(
                ["bash", "-e", "-c", block.text],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            output = done.stdout + done.stderr
            wanted = int(block.tags.get("exit") or 0)
            assert done.returncode == wanted, f"{block.text} exited {done.returncode}:\n{output}"
    finally:
        for proc in reversed(background):
            _stop(proc)
        service.close()
        service.db.dispose()


def _wait_ready(
    name: str, proc: subprocess.Popen[bytes], directory: Path, port: int, service: object
) -> None:
    def alive() -> None:
        if proc.poll() is not None:
            log = (directory / f"{name}.log").read_text(errors="replace")
            raise AssertionError(f"{name} exited:\n{log}")

    if name == "worker":

        def registered() -> bool:
            alive()
            return any(n.kind == "worker" for n in service.nodes().values())  # type: ignore[attr-defined]

        wait_for(registered, timeout=90, interval=0.2, what="the worker registered")
    else:

        def answering() -> bool:
            alive()
            try:
                return requests.get(f"http://127.0.0.1:{port}/orders", timeout=5).ok
            except requests.ConnectionError:
                return False

        wait_for(answering, timeout=60, interval=0.2, what="the web server answering")
