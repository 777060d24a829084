"""A real Redis Sentinel deployment for failover tests: master, replica, three sentinels.

Every part is a ``redis-server`` process this test owns (sentinel mode is
``redis-server <conf> --sentinel``; no ``redis-sentinel`` binary needed) on
free loopback ports, with short ``down-after-milliseconds`` and
``failover-timeout`` so a failover takes seconds. ``promotion_deadline`` is
derived from those settings: the longest a correct Sentinel may take.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from maintenance.embedded import redis_server_command
from tests.services import free_port, redis_binary, redis_reachable

#: Sentinel asks the replicas of a master in failover for INFO once a second
#: (10 s otherwise): the slowest step before it sees the promotion.
SENTINEL_INFO_PERIOD = 10.0


class SentinelUnavailable(RuntimeError):
    """This machine's redis-server cannot run a Sentinel deployment."""


class SentinelCluster:
    """Master + replica + three sentinels watching ``service`` (quorum 2)."""

    def __init__(
        self,
        service: str = "mymaster",
        *,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        sentinels: int = 3,
    ) -> None:
        self.service = service
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.dir = Path(tempfile.mkdtemp(prefix="sentinel-cluster-"))
        self.binary = redis_binary()
        self.data_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    # -- addresses -------------------------------------------------------------
    @property
    def url(self) -> str:
        """The control plane's URL for this deployment (database 0)."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    @property
    def promotion_deadline(self) -> float:
        """Seconds a correct Sentinel may take from a master's death to a promoted replica.

        Detection (``down-after``), one failed leader election (Sentinel waits
        twice ``failover-timeout`` before the next attempt), the successful
        attempt (``failover-timeout``) and one INFO period to see the new role.
        """
        return (self.down_after_ms + 3 * self.failover_timeout_ms) / 1000 + SENTINEL_INFO_PERIOD

    def master_port(self) -> int | None:
        """The master's port as the sentinels agree on it (None while they disagree)."""
        seen = set()
        for port in self.sentinel_ports:
            if port not in self.procs or self.procs[port].poll() is not None:
                continue
            try:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    _host, master = client.sentinel_get_master_addr_by_name(self.service)
            except (redis.RedisError, OSError, TypeError):
                return None
            seen.add(int(master))
        return seen.pop() if len(seen) == 1 else None

    def role(self, port: int) -> str | None:
        """``master`` or ``slave`` as the server on ``port`` says, None if unreachable."""
        try:
            with redis.Redis(port=port, socket_timeout=1) as client:
                return str(client.info("replication")["role"])
        except (redis.RedisError, OSError):
            return None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> SentinelCluster:
        master, replica = self.data_ports
        self._spawn(master, [])
        self._spawn(replica, ["--replicaof", "127.0.0.1", str(master)])
        self._wait(lambda: self._in_sync(replica), 15, "the replica to sync")
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                "\n".join(
                    [
                        f"port {port}",
                        "bind 127.0.0.1",
                        f"dir {self.dir}",
                        f"sentinel monitor {self.service} 127.0.0.1 {master} 2",
                        f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
                        f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
                        f"sentinel parallel-syncs {self.service} 1",
                        "",
                    ]
                )
            )
            self.procs[port] = subprocess.Popen(
                [self.binary, str(conf), "--sentinel"],
                stdout=(self.dir / f"sentinel-{port}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        # Hello messages every 2 s and INFO every 10 s: seconds on a quiet machine; a
        # loaded one (the suite alongside other work) has been seen to need more than 30.
        self._wait(self._sentinels_see_everyone, 90, "the sentinels to find each other")
        return self

    def kill_master(self) -> int:
        """SIGKILL the current master; return its port."""
        port = self.master_port()
        if port is None:
            raise AssertionError("the sentinels do not agree on a master")
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return port

    def close(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self) -> str:
        """The sentinels' logs, for a failing assertion's message."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.dir.glob("*.log"))
        )

    # -- internals ---------------------------------------------------------------
    def _spawn(self, port: int, extra: list[str]) -> None:
        self.procs[port] = subprocess.Popen(
            redis_server_command(
                self.binary,
                port,
                self.dir,
                "--logfile",
                str(self.dir / f"redis-{port}.log"),
                # A master waits 5 s (the default) for more replicas before a diskless
                # full sync; one replica here: sync at once.
                "--repl-diskless-sync-delay",
                "0",
                *extra,
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(lambda: redis_reachable(f"redis://127.0.0.1:{port}/0"), 10, f"redis on {port}")

    def _in_sync(self, replica: int) -> bool:
        try:
            with redis.Redis(port=replica, socket_timeout=1) as client:
                return client.info("replication").get("master_link_status") == "up"
        except (redis.RedisError, OSError):
            return False

    def _sentinels_see_everyone(self) -> bool:
        others = len(self.sentinel_ports) - 1
        for port in self.sentinel_ports:
            proc = self.procs[port]
            if proc.poll() is not None:
                raise SentinelUnavailable(
                    f"{self.binary} --sentinel exited with {proc.returncode}: "
                    + (self.dir / f"sentinel-{port}.log").read_text(errors="replace")[-500:]
                )
            try:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    state = client.sentinel_master(self.service)
            except (redis.RedisError, OSError):
                return False
            if int(state["num-other-sentinels"]) < others or int(state["num-slaves"]) < 1:
                return False
        return True

    def _wait(self, predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise SentinelUnavailable(
            f"timed out after {timeout}s waiting for {what}; logs:\n{self.logs()[-1500:]}"
        )
