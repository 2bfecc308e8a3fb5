"""Redis' own time in the two hot scripts, per job: FETCH and SETTLE in batches.

    .venv/bin/python benchmarks/throughput/bench_scripts.py [--jobs 30000] [--batch 100]

One local redis-server; N no-op jobs enqueued; then, with no worker, the broker's own
calls in a loop: FETCH a batch, SETTLE it done. Each call's time inside Redis is the
``usec`` delta of ``INFO commandstats`` for EVALSHA (the script and every command it ran,
no network, no client). Set PYTHONPATH to measure another tree (a ``git archive`` copy:
its ``worker:operator`` folders first).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import redis
import redis.asyncio as aioredis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import fill_queueworker, start_redis  # noqa: E402 (the sibling module)

from queueworker.worker.broker import Broker, Settlement  # noqa: E402


def script_usec(r: redis.Redis) -> int:
    stats: dict[str, dict[str, int]] = r.info("commandstats")  # type: ignore[assignment]
    return stats.get("cmdstat_evalsha", {}).get("usec", 0)


async def measure(url: str, jobs: int, batch: int) -> tuple[float, float]:
    r = redis.Redis.from_url(url)
    r.flushall()
    fill_queueworker(r, jobs)
    client = aioredis.from_url(url, decode_responses=True)
    b = Broker(client, "qw")
    taken = await b.fetch(["bench"], 1, 30, "bench")  # loads the scripts
    await b.settle([Settlement("done", j) for j in taken], 3600)
    fetch = settle = 0
    while True:
        u0 = script_usec(r)
        got = await b.fetch(["bench"], batch, 30, "bench")
        u1 = script_usec(r)
        if not got:
            break
        await b.settle([Settlement("done", j) for j in got], 3600)
        u2 = script_usec(r)
        fetch += u1 - u0
        settle += u2 - u1
    await client.aclose()
    return fetch / jobs, settle / jobs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=30_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    proc, url, _ = start_redis()
    try:
        runs = [asyncio.run(measure(url, args.jobs, args.batch)) for _ in range(args.runs)]
    finally:
        proc.terminate()
        proc.wait(10)
    for f, s in runs:
        print(f"FETCH {f:.2f} us/job, SETTLE {s:.2f} us/job (batches of {args.batch})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
