"""``queueworker queues``: waiting (per priority), delayed, in flight and failed jobs per queue,
and the age of the oldest waiting job, read straight from Redis (no Kubernetes needed).

    queueworker queues                   # every queue that ever had a job
    queueworker queues --queue audio,mail --json
"""

from __future__ import annotations

import argparse
import json

import redis

from queueworker.worker import queues as depth
from queueworker.worker.cli_common import CliError, add_redis_options, connect, fail, prefix
from queueworker.worker.config import split_list


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="queueworker queues", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    p.add_argument("--queue", "-q", default=None, help="comma-separated (default: all)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        client = connect(args)
        pre = prefix(args)
        names = split_list(args.queue) if args.queue else depth.discover(client, pre)
        rows = depth.depths(client, pre, names)
    except CliError as exc:
        return fail(str(exc), 3)
    except (redis.RedisError, OSError) as exc:
        return fail(f"reading the queues failed: {type(exc).__name__}: {exc}", 3)
    if args.json:
        print(json.dumps([d.info() for d in rows], indent=2))
        return 0
    if not rows:
        print("no queues (nothing was ever enqueued under this prefix)")
        return 0
    print(f"{'QUEUE':<20} {'WAITING':>8} {'DELAYED':>8} {'IN FLIGHT':>9} {'FAILED':>7} "
          f"{'OLDEST':>9}  BY PRIORITY")
    for d in rows:
        oldest = "-" if d.oldest_age is None else f"{d.oldest_age:.1f}s"
        levels = " ".join(f"p{p}={n}" for p, n in sorted(d.by_priority.items(), reverse=True))
        print(f"{d.queue:<20} {d.waiting:>8} {d.delayed:>8} {d.in_flight:>9} {d.failed:>7} "
              f"{oldest:>9}  {levels}")
    return 0
