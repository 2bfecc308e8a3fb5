"""A batch and a chain under SIGKILLed worker processes, and a SIGKILL during `then`:
counters exact, every callback enqueued once, nothing lost."""

from __future__ import annotations

import random
import subprocess
import time

import pytest
import redis

from queueworker.worker import keys
from queueworker.worker.flows import Flows, step

from support.worker_proc import entries, start_worker, stop, wait_until

pytestmark = pytest.mark.slow


def _worker(url: str) -> subprocess.Popen[str]:
    # --max-lost 0: a job whose worker was killed many times still runs (no poison pill)
    return start_worker(url, "--max-lost", "0", queues="default,cb")


def _ids(url: str, key: str, suffix: str = "") -> set[str]:
    return {e.rsplit(":", 1)[0] for e in entries(url, key) if e.rsplit(":", 1)[0].endswith(suffix)}


def test_batch_and_chain_with_sigkills(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    flows = Flows(r)
    bid = flows.batch([step("default", {"sleep": 0.3, "i": i}) for i in range(40)],
                      then=step("cb", {"sleep": 1.0, "cb": "then"}),
                      catch=step("cb", {"cb": "catch"}), finally_=step("cb", {"cb": "finally"}))
    cid = flows.chain([step("default", {"sleep": 0.1, "c": i}) for i in range(6)],
                      catch=step("cb", {"cb": "chain-catch"}))
    procs = [_worker(redis_url) for _ in range(2)]
    rng = random.Random(16)
    kills = 0
    then_suffix = f"-b-{bid}-then{keys.id_suffix('cb')}"  # ids name their queue
    try:
        deadline = time.monotonic() + 60
        while not _ids(redis_url, "test:started", then_suffix):
            assert time.monotonic() < deadline, "the batch did not finish"
            time.sleep(rng.uniform(0.3, 0.6))
            i = rng.randrange(2)
            procs[i].kill()
            procs[i].communicate()
            procs[i] = _worker(redis_url)
            kills += 1
        # SIGKILL every worker while `then` runs: it runs again, it is not enqueued again.
        for p in procs:
            p.kill()
            p.communicate()
        procs = [_worker(redis_url) for _ in range(2)]
        wait_until(lambda: bool(_ids(redis_url, "test:done", then_suffix)), timeout=30,
                   what="the then callback to complete")
        wait_until(lambda: bool(_ids(redis_url, "test:done", f"-b-{bid}-finally@cb")), timeout=30,
                   what="the finally callback")
        wait_until(lambda: flows.chain_info(cid)["state"] == "done", timeout=30,  # type: ignore[index]
                   what="the chain")
    finally:
        for p in procs:
            stop(p)
    assert kills >= 3
    info = flows.batch_info(bid)
    assert info is not None
    assert {k: info[k] for k in ("state", "total", "pending", "processed", "failed")} == {
        "state": "finished", "total": 40, "pending": 0, "processed": 40, "failed": 0}
    assert r.scard(f"qw:batch:{bid}:jobs") == 0
    # Callbacks: then and finally once each (no catch: nothing failed).
    assert int(r.hget(keys.stats("cb"), "enqueued") or 0) == 2
    assert len(_ids(redis_url, "test:done", then_suffix)) == 1
    then_id = next(iter(_ids(redis_url, "test:done", then_suffix)))
    assert int(r.hget(keys.job(then_id), "deliveries") or 0) >= 2
    # Every job ran to the end: 40 batch jobs and 6 chain steps, each step enqueued once.
    assert int(r.hget(keys.stats("default"), "enqueued") or 0) == 46
    done = _ids(redis_url, "test:done")
    assert len({i for i in done if f"-c-{cid}-" in i}) == 6
    assert len(done) == 46 + 2
    assert r.zcard(keys.failed("default")) + r.zcard(keys.failed("cb")) == 0
    # The kills did land mid-job: some jobs were delivered again.
    assert any(not e.endswith(":1") for e in entries(redis_url, "test:started"))
