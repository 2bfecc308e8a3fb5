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

import redis

from queueworker.operator.embedded_redis import EmbeddedRedis
from queueworker.worker import keys
from queueworker.worker.producer import Producer

from support.local_proc import LocalProc, children, local_cmd, write_manifest

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
        for job_id in client.scan_iter(match=keys.job("*")):
            h = client.hgetall(job_id)
            if b"payload" in h:
                deliveries[int(json.loads(h[b"payload"])["n"])] = int(h.get(b"deliveries", 1))
        code = local.interrupt()
    finally:
        local.kill()
        server.stop()
    assert kills >= 5
    assert code == 0, local.output[-4000:]
    assert done == set(range(JOBS)), f"lost: {sorted(set(range(JOBS)) - done)}"
    assert "replica exited unasked" in local.output, "local mode saw the kills"
    # At least once: a job may run twice only when it was redelivered (its
    # worker was killed with it in flight, after the handler had finished).
    twice = sorted(n for n, r in runs.items() if r > 1)
    for n in twice:
        assert deliveries.get(n, 1) > 1, f"job {n} ran twice without a redelivery"
    redelivered = sum(1 for d in deliveries.values() if d > 1)
    print(f"chaos: {kills} kills, 1 redis restart, {JOBS} jobs, {len(twice)} duplicates, "
          f"{redelivered} redelivered")
