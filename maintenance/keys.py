"""Every Redis key and channel the control plane uses, in one place.

All keys live under ``{prefix}:`` so deployments (and tests) can share a
server. Everything here is rebuildable: from SQL (status) or from the
processes themselves (nodes, running jobs) after a Redis restart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key and channel names for one ``prefix``."""

    prefix: str = "maint"

    def _k(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    # Status and its propagation.
    @property
    def status(self) -> str:
        """STRING: JSON of the current ``MaintenanceStatus``."""
        return self._k("status")

    @property
    def status_version(self) -> str:
        """STRING: version of ``status`` (guards against older writers)."""
        return self._k("status:version")

    @property
    def changes(self) -> str:
        """CHANNEL: every new status JSON is published here."""
        return self._k("changes")

    @property
    def acks(self) -> str:
        """CHANNEL: ``node_id version`` once a node applied a status."""
        return self._k("acks")

    @property
    def store(self) -> str:
        """STRING: JSON identity (id, created_at) of the SQL store the fleet uses; set by the
        first check against a new deployment's store, replaced only by ``maintenance db adopt``."""
        return self._k("store")

    # Node registry.
    @property
    def nodes(self) -> str:
        """ZSET: node id -> last heartbeat (unix seconds)."""
        return self._k("nodes")

    @property
    def node_applied(self) -> str:
        """HASH: node id -> highest status version applied."""
        return self._k("nodes:applied")

    @property
    def node_info(self) -> str:
        """HASH: node id -> JSON (kind, host, pid, started)."""
        return self._k("nodes:info")

    # Jobs.
    @property
    def active_jobs(self) -> str:
        """HASH: task id -> JSON (name, operation, worker, pid, started)."""
        return self._k("jobs:active")

    @property
    def ended_jobs(self) -> str:
        """ZSET: task id -> unix time it left the registry by ending (kept ``ENDED_TTL``)."""
        return self._k("jobs:ended")

    @property
    def completion_allowed(self) -> str:
        """SET: task ids allowed to finish whatever the mode."""
        return self._k("jobs:allowed")

    def abort_flag(self, task_id: str) -> str:
        """STRING: set when a running job is asked to stop cooperatively."""
        return self._k(f"jobs:abort:{task_id}")

    @property
    def abort_all(self) -> str:
        """STRING: activation id while every running job is asked to stop."""
        return self._k("jobs:abort:all")

    # Emergency termination.
    def emergency_progress(self, emergency_id: str) -> str:
        """HASH (TTL): worker node id -> JSON of how far its termination ladder got."""
        return self._k(f"emergency:{emergency_id}:progress")

    def emergency_counts(self, emergency_id: str) -> str:
        """HASH (TTL): outcome (aborted, terminated, killed, unterminable) -> jobs."""
        return self._k(f"emergency:{emergency_id}:counts")

    def emergency_handoff(self, node_id: str) -> str:
        """LIST: what a worker's pool children report (stopped jobs) for its main process
        to write to SQL (one SQL writer per worker, not one per pool child)."""
        return self._k(f"emergency:handoff:{node_id}")

    def emergency_claim(self, emergency_id: str, step: str) -> str:
        """STRING (TTL): set by the one process that performs ``step`` fleet-wide."""
        return self._k(f"emergency:{emergency_id}:claim:{step}")

    @property
    def drained(self) -> str:
        """CHANNEL: announces that the last running blocked-type job ended."""
        return self._k("drained")

    def drain_announced(self, activation_id: str) -> str:
        """STRING (TTL): set once the drain of one activation was announced."""
        return self._k(f"drained:{activation_id}")

    def overdue_flagged(self, activation_id: str) -> str:
        """STRING (TTL): set once an activation was flagged overdue."""
        return self._k(f"overdue:{activation_id}")

    # Blocked attempts and sessions.
    def blocked_counter(self, activation_id: str, operation: str) -> str:
        """STRING (TTL): blocked attempts of ``operation`` in one activation."""
        return self._k(f"blocked:count:{activation_id}:{operation}")

    def blocked_rate(self, operation: str, minute: int) -> str:
        """STRING (TTL): blocked attempts of ``operation`` in one minute bucket."""
        return self._k(f"blocked:rate:{operation}:{minute}")

    def would_block_counter(self, activation_id: str, operation: str) -> str:
        """STRING (TTL): TEST-mode attempts that would have been blocked."""
        return self._k(f"wouldblock:count:{activation_id}:{operation}")

    def allowlisted(self, activation_id: str) -> str:
        """HASH (TTL): allowlisted passes of one activation, ``kind:rule`` -> count."""
        return self._k(f"allowlisted:{activation_id}")

    # Rehearsals (TEST mode): what each node saw and how its gates performed.
    def rehearsal_seen(self, activation_id: str) -> str:
        """HASH (TTL): ``node<TAB>channel<TAB>operation`` -> would-be-blocked attempts."""
        return self._k(f"rehearsal:{activation_id}:seen")

    def rehearsal_unjudged(self, activation_id: str) -> str:
        """HASH (TTL): ``problem<TAB>origin<TAB>operation<TAB>worker node`` -> messages
        of a would-be-blocked type that no publish gate judged."""
        return self._k(f"rehearsal:{activation_id}:unjudged")

    def rehearsal_timings(self, activation_id: str) -> str:
        """HASH (TTL): node id -> JSON of its gates' decision timings, per channel."""
        return self._k(f"rehearsal:{activation_id}:timings")

    def invalidated_sessions(self, activation_id: str) -> str:
        """STRING (TTL): sessions invalidated in one activation."""
        return self._k(f"sessions:invalidated:{activation_id}")

    def invalidated_members(self, activation_id: str) -> str:
        """SET (TTL): index members of the sessions turned away and counted in one
        activation (each is counted once)."""
        return self._k(f"sessions:invalidated:{activation_id}:members")

    @property
    def session_epoch(self) -> str:
        """STRING: cookie sessions issued before this epoch are turned away."""
        return self._k("sessions:epoch")

    def session_index(self, role: str) -> str:
        """ZSET: session member -> last seen (unix seconds), per role (``admin``/``user``)."""
        return self._k(f"sessions:index:{role}")

    def session_users(self, role: str) -> str:
        """HASH: session member -> user label, per role (samples of active sessions)."""
        return self._k(f"sessions:users:{role}")

    @property
    def session_purges(self) -> str:
        """SET: tokens of detached non-admin indexes whose session keys are still being
        deleted (``sessions:index:user:purge:<token>``; a crashed clean-up resumes)."""
        return self._k("sessions:purging")

    @property
    def session_store(self) -> str:
        """HASH: how the web app stores server-side sessions (key prefix, same server)."""
        return self._k("sessions:store")

    def checks_claimed(self, activation_id: str) -> str:
        """STRING (TTL): set by the process that runs the consistency checks of an activation."""
        return self._k(f"integrity:checks:{activation_id}")

    @property
    def lock_recover(self) -> str:
        """STRING (TTL): held while a recovery requeue runs."""
        return self._k("lock:recover")

    def bypass_token(self, nonce: str) -> str:
        """STRING (TTL): an unredeemed one-time bypass link."""
        return self._k(f"bypass:{nonce}")

    def requeue_attempt(self, task_id: str) -> str:
        """STRING (TTL): the publish attempt of a requeued copy that a worker accepted."""
        return self._k(f"jobs:requeue-attempt:{task_id}")
