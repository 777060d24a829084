"""The performance goals, in one table: every bench prints and judges against these numbers,
and docs/benchmarks.md lists them (tests/bench/test_goals.py keeps the two in step).

A goal is judged against what the same run measured: a value past its limit by no more than
the noise that run measured (the baseline timed against itself the same way) is "within
noise", not a miss. Goals counting events that must not happen (admitted after a fence,
lost jobs) have no noise: one is a miss.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """One goal: ``key`` is ``<bench>.<name>``; ``limit`` in ``unit`` (``x`` a ratio,
    ``ms``, ``s``, or ``""`` a count); ``at_most`` False means the value must reach it."""

    key: str
    what: str
    limit: float
    unit: str
    at_most: bool = True
    source: str = "DESIGN.md §10"
    #: Why no bench measures it yet (the goal is listed, never printed).
    pending: str | None = None

    @property
    def bench(self) -> str:
        """The script in ``bench/`` that measures it."""
        return self.key.split(".", 1)[0]

    @property
    def exact(self) -> bool:
        """A count of events that must not happen: judged without noise."""
        return self.unit == ""

    def limit_text(self) -> str:
        """``<= 1.03x``, ``>= 50x``, ``= 0``."""
        if self.exact and self.limit == 0:
            return "= 0"
        return f"{'<=' if self.at_most else '>='} {self.limit:g}{self.unit and ' ' + self.unit}"


RAISED = "DESIGN.md §10 (raised)"
REQUEUE_ISSUE = "issue: fast recovery requeue"

GOALS: tuple[Goal, ...] = (
    Goal(
        "http_hook.ratio",
        "HTTP hook / bare Flask per let-through request (instructions; CPU time without valgrind)",
        1.03,
        "x",
        source=RAISED,
    ),
    Goal(
        "http_hook.vs_redis_get",
        "extra cost of a Redis-GET hook / extra cost of ours",
        3,
        "x",
        at_most=False,
    ),
    Goal(
        "publish_gate.ratio",
        "gated / ungated apply_async, maintenance off (instructions; time without valgrind)",
        1.02,
        "x",
        source=RAISED,
    ),
    Goal(
        "status_read.cheaper",
        "one Redis GET / is_operation_blocked (worst case)",
        50,
        "x",
        at_most=False,
        source="DESIGN.md §4 (hot paths read the local cache)",
    ),
    Goal("propagation.p99_8", "fenced enable, all 8 node processes applied, p99", 10, "ms"),
    Goal(
        "propagation.p99_64",
        "fenced enable, all 64 node processes applied, p99",
        10,
        "ms",
        source=RAISED,
    ),
    Goal("status_api.p99", "GET /api/maintenance/status, 200 clients, p99", 5, "ms"),
    Goal("status_api.fanout", "a change reaches all 200 SSE subscribers (slowest)", 100, "ms"),
    Goal("sessions.invalidate", "invalidate 100k Redis sessions (1 % admin)", 1000, "ms"),
    Goal(
        "sessions.logout_1m",
        "1,000,000 sessions: all non-admins out after the command",
        100,
        "ms",
        source=RAISED,
    ),
    Goal("emergency.stop", "200 running jobs all stopped, past the grace period", 2, "s"),
    Goal("emergency.requeue", "maintenance off -> all 200 jobs republished", 2, "s"),
    Goal("emergency.lost", "jobs lost", 0, ""),
    Goal("emergency.duplicated", "jobs run twice", 0, ""),
    Goal(
        "activation_under_load.admitted_requests",
        "blocked-type requests admitted after the fenced enable returned",
        0,
        "",
        source=RAISED,
    ),
    Goal(
        "activation_under_load.admitted_publishes",
        "blocked-type publishes admitted after the fenced enable returned",
        0,
        "",
        source=RAISED,
    ),
    Goal(
        "activation_under_load.refused_after_disable",
        "requests or publishes refused after the fenced disable returned",
        0,
        "",
        source=RAISED,
    ),
    Goal(
        "activation_under_load.inflight_failed",
        "requests in flight at the fence that did not complete",
        0,
        "",
        source=RAISED,
    ),
    Goal(
        "activation_under_load.allowed_p99",
        "allowed-traffic p99 around a change / same load without one (worst window)",
        1.2,
        "x",
        source=RAISED,
    ),
    Goal(
        "activation_under_load.views_disagree",
        "web instances whose view of the version or the blocked count differs",
        0,
        "",
        source="issue 13 (many instances)",
    ),
    Goal(
        "backlog.hold",
        "100,000 queued jobs of a blocked type held in the broker (worst broker)",
        30,
        "s",
        source=RAISED,
    ),
    Goal(
        "backlog.resume",
        "maintenance off -> the held queue consumed again, in order (worst broker)",
        30,
        "s",
        source=RAISED,
    ),
    Goal(
        "backlog.defer",
        "100,000 queued jobs of a blocked type on a mixed queue recorded in SQL (worst broker)",
        30,
        "s",
        source=RAISED,
    ),
    Goal(
        "backlog.requeue",
        "maintenance off -> the mixed queue's 100,000 republished from SQL (worst broker)",
        30,
        "s",
        source=RAISED,
    ),
    Goal("backlog.lost", "backlog jobs lost (held and deferred)", 0, "", source=RAISED),
    Goal("backlog.duplicated", "backlog jobs run twice", 0, "", source=RAISED),
    Goal("backlog.out_of_order", "backlog jobs run before one queued ahead", 0, "", source=RAISED),
    Goal(
        "requeue.time",
        "100,000 deferred jobs requeued from SQL (PostgreSQL), worst broker",
        30,
        "s",
        source=REQUEUE_ISSUE,
    ),
    Goal("requeue.lost", "requeued jobs missing from the queue", 0, "", source=REQUEUE_ISSUE),
    Goal("requeue.duplicated", "requeued jobs in the queue twice", 0, "", source=REQUEUE_ISSUE),
    Goal(
        "requeue.out_of_order",
        "requeued jobs queued ahead of one published before them",
        0,
        "",
        source=REQUEUE_ISSUE,
    ),
)

BY_KEY: dict[str, Goal] = {goal.key: goal for goal in GOALS}


def goals_of(bench: str) -> list[Goal]:
    """The measured goals of one bench script (by its name without ``.py``)."""
    return [goal for goal in GOALS if goal.bench == bench and goal.pending is None]
