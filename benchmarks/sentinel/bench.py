"""Redis behind Sentinel: what a failover loses, and what a durable enqueue costs.

    .venv/bin/python benchmarks/sentinel/bench.py cost --jobs 3000 --runs 3
    .venv/bin/python benchmarks/sentinel/bench.py failover --trials 5

Both run 1 master, 2 replicas and 3 Sentinels on loopback
(tests/support/redis_sentinel.py: down-after 1 s) and talk to them through a
``redis+sentinel://`` URL (worker/connection.py).

cost: one producer enqueues ``--jobs`` jobs one at a time (one round trip each),
then in batches of 100 (``enqueue_many``), plain (``Producer``) and durable
(``DurableProducer``, WAIT for 1 and for 2 replicas); medians over ``--runs``.

failover: per trial a fresh setup; one in-process worker serves two queues
while ``--producers`` async producers per queue enqueue as fast as they can,
plain on one queue, durable (WAIT 1) on the other; after ``--before`` seconds
the master gets SIGKILL (``--fault stop``: SIGSTOP until a new master is
promoted, then SIGCONT: a partition with the clients on the old master's side);
once a new master is promoted the load goes on for
``--after`` seconds, then everything drains. Per queue: acknowledged jobs that
never ran (lost), jobs that ran twice (duplicated), enqueues that raised.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from queueworker.worker import connection  # noqa: E402
from queueworker.worker.durable import AsyncDurableProducer, DurableProducer  # noqa: E402
from queueworker.worker.producer import AsyncProducer, Producer  # noqa: E402
from queueworker.worker.runtime import Worker  # noqa: E402

from support.redis_sentinel import SentinelSetup  # noqa: E402
from support.sentinel_load import Tally, drained, produce  # noqa: E402
from support.worker_inproc import fast_settings, table, wait_for  # noqa: E402

QUEUES = ("plain", "durable")


def _one_run(url: str, jobs: int) -> dict[str, float]:
    client = connection.sync_client(url)
    producers: dict[str, Producer] = {
        "plain": Producer(client),
        "wait1": DurableProducer(client, min_replicas_ack=1, ack_timeout=5.0),
        "wait2": DurableProducer(client, min_replicas_ack=2, ack_timeout=5.0),
    }
    out: dict[str, float] = {}
    for name, producer in producers.items():
        lat = []
        t0 = time.perf_counter()
        for i in range(jobs):
            t = time.perf_counter()
            producer.enqueue(f"bench-{name}", {"n": i})
            lat.append(time.perf_counter() - t)
        out[f"{name} one/s"] = jobs / (time.perf_counter() - t0)
        lat.sort()
        out[f"{name} p50 ms"] = lat[len(lat) // 2] * 1000
        out[f"{name} p99 ms"] = lat[int(len(lat) * 0.99)] * 1000
        t0 = time.perf_counter()
        producer.enqueue_many(f"bench-{name}", [{"n": i} for i in range(jobs)], chunk=100)
        out[f"{name} batch100/s"] = jobs / (time.perf_counter() - t0)
    client.flushdb()
    client.close()
    return out


def cost(args: argparse.Namespace) -> dict[str, Any]:
    setup = SentinelSetup().start()
    try:
        runs = [_one_run(setup.url(), args.jobs) for _ in range(args.runs)]
    finally:
        setup.cleanup()
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}


async def _trial(args: argparse.Namespace) -> dict[str, Any]:
    setup = await asyncio.to_thread(lambda: SentinelSetup().start())
    url = setup.url()
    tally = Tally(QUEUES)
    worker = Worker(fast_settings(url, queues=list(QUEUES), lease=3.0, concurrency=32),
                    table(tally.handler(args.job_ms / 1000)))
    clients = [connection.async_client(url) for _ in range(2)]
    producers = {"plain": AsyncProducer(clients[0]),
                 "durable": AsyncDurableProducer(clients[1], min_replicas_ack=1,
                                                 ack_timeout=1.0)}
    stop = asyncio.Event()
    numbers = {q: itertools.count(1) for q in QUEUES}
    tasks = [asyncio.create_task(worker.run())]
    tasks += [asyncio.create_task(produce(p, q, tally, stop, numbers[q]))
              for q, p in producers.items() for _ in range(args.producers)]
    try:
        await asyncio.sleep(args.before)
        killed = time.monotonic()
        if args.fault == "kill":
            old = await asyncio.to_thread(setup.kill_master)
            await asyncio.to_thread(setup.wait_new_master, old, 30.0)
        elif args.fault == "lag":  # replicas behind (frozen) when the master dies
            replicas = [n for n in setup.nodes if n.port != setup.master_port() and n.proc]
            for n in replicas:
                n.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
            await asyncio.sleep(args.lag)
            old = await asyncio.to_thread(setup.kill_master)
            for n in replicas:
                n.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
            await asyncio.to_thread(setup.wait_new_master, old, 30.0)
        else:  # frozen through the failover, then back: it serves its clients until
            old, node = await asyncio.to_thread(setup.freeze_master)  # demoted
            await asyncio.to_thread(setup.wait_new_master, old, 30.0)
            assert node.proc is not None
            node.proc.send_signal(signal.SIGCONT)
        promoted = time.monotonic() - killed
        await asyncio.sleep(args.after)
        stop.set()
        await wait_for(lambda: drained(clients[0], QUEUES), 120, "drain")
    finally:
        stop.set()
        worker.stop("bench")
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in clients:
            await c.aclose()
        await asyncio.to_thread(setup.cleanup)
    return {"promoted_s": round(promoted, 2),
            **{q: tally.summary(q) for q in QUEUES}}


def failover(args: argparse.Namespace) -> dict[str, Any]:
    trials = [asyncio.run(_trial(args)) for _ in range(args.trials)]
    totals = {q: {k: sum(t[q][k] for t in trials) for k in trials[0][q]} for q in QUEUES}
    return {"trials": trials, "totals": totals}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cost")
    c.add_argument("--jobs", type=int, default=3000)
    c.add_argument("--runs", type=int, default=3)
    f = sub.add_parser("failover")
    f.add_argument("--trials", type=int, default=5)
    f.add_argument("--producers", type=int, default=8, help="async producers per queue")
    f.add_argument("--before", type=float, default=3.0)
    f.add_argument("--after", type=float, default=2.0)
    f.add_argument("--fault", choices=("kill", "stop", "lag"), default="kill",
                   help="kill: SIGKILL the master; stop: SIGSTOP it through the failover, "
                   "then SIGCONT (the old master serves its clients until demoted); lag: "
                   "the replicas are frozen --lag seconds, then the master is SIGKILLed")
    f.add_argument("--lag", type=float, default=0.5)
    f.add_argument("--job-ms", type=float, default=0.0,
                   help="each job's work (0: none); with work a backlog builds up")
    args = p.parse_args()
    result = cost(args) if args.cmd == "cost" else failover(args)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
