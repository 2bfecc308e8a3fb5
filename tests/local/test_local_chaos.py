"""Chaos: jobs through local mode while workers are SIGKILLed and Redis restarts.

Every second or two the test SIGKILLs a random worker process (local mode
replaces it, as a ReplicaSet would) and once, mid-run, restarts the embedded
redis-server (AOF, fsync always). At the end every job has run to completion
at least once; a job ran twice only if it was redelivered (its worker died
with it in flight). Duplicates are counted and printed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import redis

from queueworker.local.embedded_redis import EmbeddedRedis
from queueworker.worker import keys
from queueworker.worker.producer import Producer

from support.local_proc import LocalProc, children, local_cmd, write_manifest

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

JOBS = 80
CHAOS_SECONDS = 16.0


def _enqueue(client: redis.Redis, numbers: range) -> None:
    producer = Producer(client)
    for n in numbers:
        producer.enqueue("work", {"n": n, "seconds": round(random.uniform(0.1, 0.4), 3)},
                         max_tries=10)


def test_kills_and_a_redis_restart_lose_nothing(tmp_path: Path) -> None:
    random.seed(8)
    server = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url, socket_timeout=5,
                                  retry_on_error=[redis.ConnectionError])
    # Short leases: a killed worker's jobs come back within seconds.
    manifest = write_manifest(tmp_path, server.url, max_replicas=4, target=3, idle=30,
                              worker_args=("--lease", "2", "--reap-interval", "0.5",
                                           "--max-lost", "0"))
    local = LocalProc(local_cmd(manifest))
    kills = 0
    try:
        local.wait_for("status ")
        _enqueue(client, range(JOBS // 2))
        local.wait_for("scale up 0 -> ", timeout=20)
        started = time.monotonic()
        restarted = False
        while time.monotonic() - started < CHAOS_SECONDS:
            time.sleep(random.uniform(1.0, 2.0))
            workers = children(local.proc.pid)
            if workers:
                os.kill(random.choice(workers), signal.SIGKILL)
                kills += 1
            if not restarted and time.monotonic() - started > CHAOS_SECONDS / 2:
                server.restart()  # same port, same AOF
                restarted = True
                _enqueue(client, range(JOBS // 2, JOBS))
        assert restarted
        deadline = time.monotonic() + 60
        while client.scard("t:done") < JOBS and time.monotonic() < deadline:
            time.sleep(0.2)
        done = {int(x) for x in client.smembers("t:done")}
        runs = {int(k): int(v) for k, v in client.hgetall("t:runs").items()}
        deliveries: dict[int, int] = {}
        states: dict[int, dict[bytes, bytes]] = {}  # for the failure message
        for job_id in client.scan_iter(match="qw:{*}:job:*"):
            h = client.hgetall(job_id)
            if b"payload" in h:
                n = int(json.loads(h[b"payload"])["n"])
                deliveries[n] = int(h.get(b"deliveries", 1))
                states[n] = {k: v for k, v in h.items() if k != b"traceback"}
        code = local.interrupt()
    finally:
        local.kill()
        server.stop()
    assert code == 0, local.output[-4000:]
    assert kills >= 5, local.output[-4000:]
    missing = sorted(set(range(JOBS)) - done)
    assert not missing, (f"not done: {missing}: {[states.get(n) for n in missing]}\n"
                         + local.output[-3000:])
    assert "replica.exited_unasked" in local.output, "local mode saw the kills"
    # At least once: a job may run twice only when it was redelivered (its
    # worker was killed with it in flight, after the handler had finished).
    twice = sorted(n for n, r in runs.items() if r > 1)
    for n in twice:
        assert deliveries.get(n, 1) > 1, f"job {n} ran twice without a redelivery"
    redelivered = sum(1 for d in deliveries.values() if d > 1)
    print(f"chaos: {kills} kills, 1 redis restart, {JOBS} jobs, {len(twice)} duplicates, "
          f"{redelivered} redelivered")


def test_jobs_of_the_last_killed_worker_are_finished(tmp_path: Path, redis_url: str) -> None:
    """The only worker dies holding the only jobs: nothing waits, all is in flight.
    Local mode must restart the replica (a crash keeps the replica count, as in a
    Deployment), whose reaper brings the expired leases back."""
    client = redis.Redis.from_url(redis_url)
    manifest = write_manifest(tmp_path, redis_url, max_replicas=1, target=1, idle=30,
                              worker_args=("--lease", "1.5", "--reap-interval", "0.5"))
    local = LocalProc(local_cmd(manifest))
    try:
        local.wait_for("status ")
        Producer(client).enqueue_many("work", [{"n": 0, "seconds": 4.0},
                                               {"n": 1, "seconds": 4.0}])
        deadline = time.monotonic() + 30
        while client.zcard(keys.inflight("work")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.llen(keys.waiting("work")) == 0, "both jobs taken by the one worker"
        (worker,) = children(local.proc.pid)
        os.kill(worker, signal.SIGKILL)
        local.wait_for("replica.exited_unasked", timeout=10)
        deadline = time.monotonic() + 40
        while client.scard("t:done") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        code = local.interrupt()
    finally:
        local.kill()
    assert code == 0
    assert {int(x) for x in client.smembers("t:done")} == {0, 1}, local.output[-3000:]
