"""Ctrl-C (SIGINT) drains like SIGTERM in a pod: finish or hand back, lose nothing."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import redis

from queueworker.local.embedded_redis import free_port, port_is_free
from queueworker.worker import keys
from queueworker.worker.producer import Producer

from support.local_proc import LocalProc, local_cmd, write_manifest
from support.worker_proc import wait_until

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _payload_n(client: redis.Redis, job_id: bytes) -> int:
    raw = client.hget(keys.job(job_id.decode()), "payload")
    assert raw is not None
    return int(json.loads(raw)["n"])


def test_sigint_finishes_running_jobs_and_leaves_the_rest_queued(
        tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    # Jobs of 1 s, a drain deadline of 10 s: running jobs finish during the drain.
    manifest = write_manifest(tmp_path, redis_url, max_replicas=2, target=4, grace=20,
                              margin=10)
    local = LocalProc(local_cmd(manifest))
    try:
        local.wait_for("status ")
        producer = Producer(client)
        for n in range(12):
            producer.enqueue("work", {"n": n, "seconds": 1.0})
        local.wait_for(" -> 2: ", timeout=20)  # maxReplicas (maybe via 1 if polled mid-enqueue)
        wait_until(lambda: client.zcard(keys.inflight("work")) >= 2, 30, 0.1, "2 jobs running")
        code = local.interrupt(timeout=60)
    finally:
        local.kill()
    assert code == 0, local.output
    done = {int(x) for x in client.smembers("t:done")}
    waiting = {_payload_n(client, j) for j in client.lrange(keys.waiting("work"), 0, -1)}
    assert client.zcard(keys.inflight("work")) == 0, "nothing left in flight"
    assert done, "the jobs running at SIGINT finished"
    assert done | waiting == set(range(12)), f"lost: {set(range(12)) - done - waiting}"
    assert not done & waiting
    assert "past grace" not in local.output, "no worker needed SIGKILL"


def test_sigint_hands_back_jobs_longer_than_the_drain_deadline(
        tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    # Jobs of 8 s, a drain deadline of 1 s (grace 3 - margin 2): handed back, not lost.
    manifest = write_manifest(tmp_path, redis_url, max_replicas=2, target=1, grace=3,
                              margin=2)
    local = LocalProc(local_cmd(manifest))
    try:
        local.wait_for("status ")
        producer = Producer(client)
        for n in range(3):
            producer.enqueue("work", {"n": n, "seconds": 8.0})
        wait_until(lambda: client.zcard(keys.inflight("work")) >= 2, 30, 0.1, "2 jobs running")
        code = local.interrupt(timeout=30)
    finally:
        local.kill()
    assert code == 0, local.output
    assert client.scard("t:done") == 0, "handed back at the deadline, not run to the end"
    assert client.zcard(keys.inflight("work")) == 0
    waiting = sorted(_payload_n(client, j) for j in client.lrange(keys.waiting("work"), 0, -1))
    assert waiting == [0, 1, 2], "every job is back in the queue"


def test_a_second_sigint_kills_the_workers_and_still_stops_embedded_redis(
        tmp_path: Path) -> None:
    server_port = free_port()
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    # Jobs of 8 s and a drain deadline of 25 s: only a forced stop ends this quickly.
    manifest = write_manifest(tmp_path, dead_url, max_replicas=1, target=1, grace=30,
                              margin=5)
    local = LocalProc([*local_cmd(manifest), "--embedded-redis"])
    try:
        line = local.wait_for("started an embedded redis-server")
        server_port = int(line.rsplit(":", 1)[1].split("/")[0])
        client = redis.Redis(port=server_port)
        Producer(client).enqueue("work", {"n": 0, "seconds": 8.0})
        wait_until(lambda: client.zcard(keys.inflight("work")) == 1, 30, 0.1, "the job running")
        local.proc.send_signal(signal.SIGINT)
        local.wait_for("drain.started", timeout=10)
        time.sleep(0.5)
        code = local.interrupt(timeout=20)
    finally:
        local.kill()
    assert code == 0, local.output
    assert "event=signal.force_stop signal=SIGINT" in local.output
    assert port_is_free(server_port), "the embedded redis-server was stopped"
