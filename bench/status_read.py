"""Hot-path cost: ``is_operation_blocked`` (local cache) vs one Redis GET, same run.

The Redis GET is timed twice, before and after the checks: the two timings against each
other are the method's noise in this run, the margin the goal is judged with.

Goal (bench/goals.py): the check is >= 50x cheaper than a Redis GET.

    .venv/bin/python bench/status_read.py [--short] [--check]
"""

from __future__ import annotations

import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Report, bench_settings, parser
from maintenance import OperationType, build_service

USER = {"username": "bob", "role": "user"}
ADMIN = {"username": "root", "role": "admin"}


def per_call(stmt: object, number: int, repeat: int = 7) -> float:
    """Median seconds per call over ``repeat`` rounds."""
    rounds = timeit.repeat(stmt, number=number, repeat=repeat)  # type: ignore[call-overload]
    return statistics.median(rounds) / number


def main() -> None:
    args = parser(__doc__).parse_args()
    report = Report("status_read", args)
    scale = 20 if args.short else 1
    settings = bench_settings()
    service = build_service(settings, kind="bench").start()
    client, key = service.redis, service.keys.status
    op = OperationType.CAPTION_GENERATION

    redis_get = per_call(lambda: client.get(key), 5_000 // scale)
    off = per_call(lambda: service.is_operation_blocked(op, USER), 500_000 // scale)
    service.enable_maintenance("bench", "10m", enabled_by="bench")
    on_user = per_call(lambda: service.is_operation_blocked(op, USER), 200_000 // scale)
    on_admin = per_call(lambda: service.is_operation_blocked(op, ADMIN), 200_000 // scale)
    on_str = per_call(
        lambda: service.is_operation_blocked("caption_generation", USER), 200_000 // scale
    )
    service.disable_maintenance("bench", requeue=False)
    redis_get_again = per_call(lambda: client.get(key), 5_000 // scale)
    service.close()
    service.db.dispose()

    print("is_operation_blocked (reads the local cache) vs one Redis GET, same run")
    print(
        f"  Redis GET of the status key          : {redis_get * 1e6:8.2f} us "
        f"(again, after the checks: {redis_get_again * 1e6:.2f} us)"
    )
    rows = [
        ("maintenance off", off),
        ("maintenance on, user (blocked)", on_user),
        ("maintenance on, admin (bypass)", on_admin),
        ("maintenance on, op given as str", on_str),
    ]
    worst = max(cost for _, cost in rows)
    for label, cost in rows:
        print(
            f"  is_operation_blocked, {label:<31}: {cost * 1e6:8.3f} us   "
            f"{redis_get / cost:7.1f}x cheaper"
        )
    cheaper = redis_get / worst
    report.goal("status_read.cheaper", cheaper, cheaper * abs(redis_get_again / redis_get - 1))
    report.finish()


if __name__ == "__main__":
    main()
